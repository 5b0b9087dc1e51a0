/**
 * The one schema for what operators send (HTTP bodies, CLI options, site profiles): a site and
 * its mappings. Module-side fields go to the module twin; `public`, `allowCidrs` and
 * `ratePerMinute` go to the port ledger for the gateway.
 */
import { z } from "zod";
import { ALLOW_ENTRY_RULE, isAllowEntry } from "../../../../lib/ledger/cidr.ts";
import { ROUTE_LIMIT_MAX } from "../../../../lib/ledger/route-limits.ts";
import { siteIdSchema } from "../../../../lib/ledger/schema.ts";
import { MAX_MAPPINGS, MappingNameSchema, MappingSchema } from "../../../../lib/twin/index.ts";

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

/** A source allowlist entry, by the rule the gateway compiles it with (`lib/ledger/cidr.ts`). */
export const allowCidrSchema = z.string().min(1).max(64).refine(isAllowEntry, ALLOW_ENTRY_RULE);

/**
 * One mapping: *the* module twin's mapping schema (`lib/twin` MappingSchema: target, limits,
 * timeouts, PROXY mode), extended with what the API adds for the gateway (`public`, `allowCidrs`,
 * `ratePerMinute`). Never a looser copy: what passes here is what the module accepts.
 */
export const mappingSpecSchema = MappingSchema.extend({
  /**
   * Unset: the gateway's default (lib/ledger/route-limits.ts), and the module keeps no idle timer
   * of its own; 0 = never, here and at the module. Narrower than the twin's range, never wider.
   */
  idleTimeoutMs: MappingSchema.shape.idleTimeoutMs.unwrap().max(ROUTE_LIMIT_MAX.idleTimeoutMs).optional(),
  public: publicEndpointSchema.default({ kind: "tcp" }),
  allowCidrs: z.array(allowCidrSchema).max(64).default([]),
  ratePerMinute: z.number().int().min(0).max(1_000_000).default(0),
  /** Gateway: live connections one client address may hold; unset: the gateway's default; 0 = no cap. */
  maxConnectionsPerSource: z.number().int().min(0).max(ROUTE_LIMIT_MAX.maxConnectionsPerSource).optional(),
  /** Gateway: close a client that sent nothing this long after connecting; unset: default; 0 = never. */
  silentTimeoutMs: z.number().int().min(0).max(ROUTE_LIMIT_MAX.silentTimeoutMs).optional(),
});
export type MappingSpec = z.infer<typeof mappingSpecSchema>;
export type MappingInput = z.input<typeof mappingSpecSchema>;

// The module twin contract caps a site at MAX_MAPPINGS (reported properties must fit 32 KB).
export const MAX_MAPPINGS_PER_SITE = MAX_MAPPINGS;

/**
 * A record of mappings by name. zod's record parser skips an own `__proto__` key without a word
 * (it would otherwise set the prototype), so that name is refused here out loud, like the other
 * reserved names the key schema refuses.
 */
function mappingRecord() {
  return z
    .unknown()
    .superRefine((value, ctx) => {
      if (typeof value === "object" && value !== null && Object.hasOwn(value, "__proto__")) {
        const why = MappingNameSchema.safeParse("__proto__").error?.issues[0]?.message ?? "reserved name";
        ctx.addIssue({ code: "custom", path: ["__proto__"], message: why });
      }
    })
    .pipe(z.record(MappingNameSchema, mappingSpecSchema));
}

export const mappingsSchema = mappingRecord().refine((m) => Object.keys(m).length <= MAX_MAPPINGS_PER_SITE, {
  message: `at most ${MAX_MAPPINGS_PER_SITE} mappings per site (the module twin's reported properties must fit 32 KB)`,
});

/** An IoT Hub device id (IoT Hub's own rule: 1-128 of letters, digits and `-:.+%_#*?!(),=@;$'`). */
export const deviceIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9\-:.+%_#*?!(),=@;$']{1,128}$/, "must be a valid IoT Hub device id");

/**
 * Edge devices one site may have (a redundant site: ADR 0014). All of them listen on the site's
 * one hybrid connection, and Azure Relay allows 25 listeners per hybrid connection: 8 devices at
 * the module's default of 2 control channels each is 16, which leaves room for a restarted
 * module whose old listeners the relay has not dropped yet.
 */
export const MAX_DEVICES_PER_SITE = 8;

const deviceListSchema = z
  .array(deviceIdSchema)
  .min(1, "a site has at least one device")
  .max(MAX_DEVICES_PER_SITE, `at most ${MAX_DEVICES_PER_SITE} devices per site (the relay's listener quota)`)
  .refine((ids) => new Set(ids).size === ids.length, "a device is listed twice");

/** `POST /api/sites` body. */
export const createSiteBodySchema = z
  .object({
    siteId: siteIdSchema,
    /** The site's one device; defaults to the site id. */
    deviceId: deviceIdSchema.optional(),
    /** Or the devices of a redundant site, all at once (`deviceId` then stays unset). */
    deviceIds: deviceListSchema.optional(),
    /** Profile whose mappings a site gets when `mappings` is absent. */
    profile: z.string().min(1).max(64).optional(),
    mappings: mappingsSchema.optional(),
  })
  .strict()
  .refine((b) => b.deviceId === undefined || b.deviceIds === undefined, {
    message: "give deviceId or deviceIds, not both",
    path: ["deviceIds"],
  });
export type CreateSiteBody = z.infer<typeof createSiteBodySchema>;

/** `POST /api/sites/{id}/move` body: the relay namespace to move to (its endpoint or name). */
export const moveSiteBodySchema = z.object({ namespace: z.string().min(1).max(300) }).strict();

/** `POST /api/sites/{id}/devices` body: the device to join; absent, the rollout names one. */
export const addDeviceBodySchema = z.object({ deviceId: deviceIdSchema.optional() }).strict();

/** `POST /api/sites/{id}/mappings/{name}` (add) and `PUT` (replace whole) body. */
export const putMappingBodySchema = mappingSpecSchema;

/**
 * `PATCH /api/sites/{id}/mappings/{name}` body: any subset of the fields. Only the fields given
 * change; the merged mapping is then checked whole with `mappingSpecSchema`.
 */
export const updateMappingBodySchema = mappingSpecSchema.partial();

/**
 * The desired state of one site, stored in its ledger row (`spec`): its edge devices (each with
 * its own relayListener module identity and twin, all given the same desired properties) and
 * its mappings. A spec saved before sites had several devices names one `deviceId`; it reads as
 * a site with that one device.
 */
export const siteSpecSchema = z.preprocess(
  (v) => {
    if (typeof v !== "object" || v === null || Array.isArray(v)) return v;
    const { deviceId, ...rest } = v as Record<string, unknown>;
    return "deviceIds" in rest || deviceId === undefined ? v : { ...rest, deviceIds: [deviceId] };
  },
  z.object({
    siteId: siteIdSchema,
    deviceIds: deviceListSchema,
    profile: z.string().min(1),
    mappings: mappingRecord(),
  }),
);
export type SiteSpec = z.infer<typeof siteSpecSchema>;

/** A site profile: default mappings for new sites. */
export const siteProfileSchema = z.object({ mappings: mappingsSchema }).strict();
export const siteProfilesSchema = z.record(z.string().min(1), siteProfileSchema);
export type SiteProfiles = z.infer<typeof siteProfilesSchema>;

/** Formats zod issues as "path: reason" sentences for 400 answers. */
export function describeIssues(error: z.ZodError): Array<{ path: string; message: string }> {
  return error.issues.map((i) => ({
    path: i.path.length ? i.path.map(String).join(".") : "(body)",
    // A bad record key ("Invalid key in record") carries the key rule's own reason inside.
    message: (i.code === "invalid_key" ? i.issues[0]?.message : undefined) ?? i.message,
  }));
}
