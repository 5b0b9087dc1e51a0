/**
 * The one schema for what operators send (HTTP bodies, CLI options, site profiles): a site and
 * its mappings. Module-side fields go to the module twin; `public`, `allowCidrs` and
 * `ratePerMinute` go to the port ledger for the gateway.
 */
import { z } from "zod";
import { portNameSchema, siteIdSchema } from "../../../../lib/ledger/schema.ts";
import { MAX_MAPPINGS } from "../../../../lib/twin/index.ts";

const TARGET = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}))?:\d{1,5}$/;

export const publicEndpointSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("tcp"), port: z.number().int().min(1).max(65535).optional() }).strict(),
  z
    .object({
      kind: z.enum(["tls-sni", "http-host"]),
      port: z.number().int().min(1).max(65535),
      hostname: z
        .string()
        .regex(
          /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/,
          "must be a DNS host name",
        ),
    })
    .strict(),
]);

/** One mapping: logical port name → on-prem target, with module and gateway limits. */
export const mappingSpecSchema = z
  .object({
    target: z
      .string()
      .regex(TARGET, "must be host:port")
      .refine((t) => {
        const port = Number(t.slice(t.lastIndexOf(":") + 1));
        return port >= 1 && port <= 65535;
      }, "port must be 1-65535"),
    enabled: z.boolean().default(true),
    maxConnections: z.number().int().min(0).max(100_000).default(100),
    connectTimeoutMs: z.number().int().min(100).max(120_000).default(5000),
    idleTimeoutMs: z.number().int().min(0).max(86_400_000).default(0),
    proxyProtocol: z.enum(["none", "strip", "forward"]).default("none"),
    public: publicEndpointSchema.default({ kind: "tcp" }),
    allowCidrs: z.array(z.string().min(1).max(64)).max(64).default([]),
    ratePerMinute: z.number().int().min(0).max(1_000_000).default(0),
  })
  .strict();
export type MappingSpec = z.infer<typeof mappingSpecSchema>;
export type MappingInput = z.input<typeof mappingSpecSchema>;

// The module twin contract caps a site at MAX_MAPPINGS (reported properties must fit 32 KB).
export const MAX_MAPPINGS_PER_SITE = MAX_MAPPINGS;

export const mappingsSchema = z
  .record(portNameSchema, mappingSpecSchema)
  .refine((m) => Object.keys(m).length <= MAX_MAPPINGS_PER_SITE, {
    message: `at most ${MAX_MAPPINGS_PER_SITE} mappings per site (the module twin's reported properties must fit 32 KB)`,
  });

/** `POST /api/sites` body. */
export const createSiteBodySchema = z
  .object({
    siteId: siteIdSchema,
    /** Defaults to the site id. */
    deviceId: z
      .string()
      .regex(/^[A-Za-z0-9\-:.+%_#*?!(),=@;$']{1,128}$/, "must be a valid IoT Hub device id")
      .optional(),
    /** Profile whose mappings a site gets when `mappings` is absent. */
    profile: z.string().min(1).max(64).optional(),
    mappings: mappingsSchema.optional(),
  })
  .strict();
export type CreateSiteBody = z.infer<typeof createSiteBodySchema>;

/** `PUT /api/sites/{id}/mappings/{name}` body. */
export const putMappingBodySchema = mappingSpecSchema;

/** The desired state of one site, stored in its ledger row (`spec`). */
export const siteSpecSchema = z.object({
  siteId: siteIdSchema,
  deviceId: z.string().min(1),
  profile: z.string().min(1),
  mappings: z.record(z.string(), mappingSpecSchema),
});
export type SiteSpec = z.infer<typeof siteSpecSchema>;

/** A site profile: default mappings for new sites. */
export const siteProfileSchema = z.object({ mappings: mappingsSchema }).strict();
export const siteProfilesSchema = z.record(z.string().min(1), siteProfileSchema);
export type SiteProfiles = z.infer<typeof siteProfilesSchema>;

/** Formats zod issues as "path: reason" sentences for 400 answers. */
export function describeIssues(error: z.ZodError): Array<{ path: string; message: string }> {
  return error.issues.map((i) => ({
    path: i.path.length ? i.path.map(String).join(".") : "(body)",
    message: i.message,
  }));
}
