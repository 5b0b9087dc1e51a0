/**
 * The module twin contract of `relayListener`: the desired properties the rollout service writes
 * and the module applies. One zod schema is the source of truth; `manifests/` carries its JSON
 * Schema export (see `json-schema.ts`) and `lib/twin/README.md` what IoT Hub's twin limits mean
 * for it.
 *
 * Every object is strict: a misspelt field (`maxConnection`) is an error reported back through
 * reported properties, not a setting silently ignored.
 */
import { z } from "zod";

/** Version of this contract the module understands (major 1; minors add optional fields only). */
export const SCHEMA_VERSION = "1.1";

/**
 * Mapping names, the one name rule of the project (the twin's keys, the rollout's API and
 * ledger, the CLI's arguments): "mapping name" is the name of this concept everywhere. A
 * mapping's *logical port* (what a sender names in its preamble) is the mapping name unless
 * `portName` sets another. Twin keys forbid `.`, `$`, space and control characters; this
 * pattern keeps well inside that.
 */
export const MAPPING_NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * azbridge's logical port names (its `Constants.RelayNameRegex`: letters, digits, `/ _ - .`), as
 * long as the preamble's one length byte allows. Wider than mapping names: twin keys cannot carry
 * `.`, so a mapping that must answer to an azbridge name like `rdp.main` keeps a twin-safe name
 * and says its logical port in `portName`.
 */
export const LOGICAL_PORT_NAME_PATTERN = /^[0-9A-Za-z/_.-]{1,255}$/;

export const LogicalPortNameSchema = z
  .string()
  .regex(
    LOGICAL_PORT_NAME_PATTERN,
    "logical port names are 1-255 characters of A-Z a-z 0-9 / _ - . (azbridge's port names)",
  );

/**
 * At most this many mappings per site. The binding limit is the 32 KB reported-properties section
 * (each mapping reports its counters and last error), computed in `limits.ts` and documented in
 * the README; 100 leaves headroom for the relay and error sections.
 */
export const MAX_MAPPINGS = 100;

/** Host (DNS name, IPv4, or bracketed IPv6) and port: `10.0.0.5:3389`, `plc.local:502`, `[fd00::5]:22`. */
export const TARGET_PATTERN =
  /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}))*\.?):(\d{1,5})$/;

/** Split a validated target into host (brackets removed) and port. */
export function parseTarget(target: string): { host: string; port: number } {
  const idx = target.lastIndexOf(":");
  let host = target.slice(0, idx);
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  return { host, port: Number(target.slice(idx + 1)) };
}

/**
 * A secret string (SAS key). Branded so code that handles it is visibly handling a secret; the
 * field name `sasKey` is on the logger's redaction list (`lib/log.ts`), and reported properties
 * carry only `keyFingerprint(sasKey)`. `writeOnly` in the JSON Schema says the same to tools.
 */
export const SecretString = z
  .string()
  .min(1, "must not be empty")
  .max(512, "must be at most 512 characters")
  .brand<"Secret">()
  .meta({ writeOnly: true, description: "Secret. Never logged or reported; only its fingerprint is." });
export type SecretString = z.output<typeof SecretString>;

export const RelaySchema = z
  .strictObject({
    endpoint: z
      .string()
      .regex(/^(?:sb|wss|ws):\/\/[^\s/?#]+\/?$/, "must be sb://host, wss://host[:port] or ws://host[:port]")
      .meta({ description: "Relay namespace endpoint, e.g. sb://contoso-relay.servicebus.windows.net" }),
    hybridConnection: z
      .string()
      .regex(
        /^[A-Za-z0-9][A-Za-z0-9._-]{0,259}$/,
        "must be a hybrid connection name (letters, digits, . _ -)",
      )
      .meta({ description: "The site's hybrid connection, site-<siteId>" }),
    sasKeyName: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,256}$/, "must be an authorization rule name")
      .meta({ description: "Listen-only authorization rule of the hybrid connection" }),
    sasKey: SecretString,
  })
  .meta({ description: "Where the module listens. Absent: the module runs but does not listen." });
export type RelayConfig = z.output<typeof RelaySchema>;

export const ProxyProtocolMode = z.enum(["none", "strip", "forward"]).meta({
  description:
    "none: plain bytes; strip: the gateway sends a PROXY v2 header, the module removes it; forward: the module passes it on to the target",
});

export const MappingSchema = z
  .strictObject({
    target: z
      .string()
      .max(270)
      .regex(TARGET_PATTERN, "must be host:port (IPv6 in brackets)")
      .refine((t) => {
        // Only judge the port of a well-formed target: the pattern already reported the others.
        if (!TARGET_PATTERN.test(t)) return true;
        const port = parseTarget(t).port;
        return port >= 1 && port <= 65535;
      }, "port must be 1-65535")
      .meta({ description: "On-premises target host:port; must also pass the module's local allowlist" }),
    enabled: z.boolean().default(true),
    maxConnections: z
      .int()
      .min(0)
      .max(10_000)
      .default(100)
      .meta({ description: "Concurrent connections to the target; 0 = unlimited" }),
    connectTimeoutMs: z.int().min(100).max(120_000).default(5_000),
    idleTimeoutMs: z
      .int()
      .min(0)
      .max(86_400_000)
      .default(0)
      .meta({ description: "Close a connection after this long without bytes either way; 0 = never" }),
    proxyProtocol: ProxyProtocolMode.default("none"),
    portName: LogicalPortNameSchema.optional().meta({
      description:
        "The logical port name senders ask for (azbridge's -L …/port_name, -T port_name/…); absent: the mapping's name. Lets names with '.', which twin keys cannot hold, migrate from azbridge",
    }),
  })
  .meta({ description: "One logical port: relayed connections named after it go to target" });
export type MappingConfig = z.output<typeof MappingSchema>;
export type MappingInput = z.input<typeof MappingSchema>;

export const DrainSchema = z
  .strictObject({
    onRemove: z
      .enum(["drain", "close"])
      .default("drain")
      .meta({ description: "What happens to live connections of a removed or disabled mapping" }),
    timeoutMs: z
      .int()
      .min(0)
      .max(600_000)
      .default(30_000)
      .meta({ description: "Longest a drain waits before closing what is left" }),
  })
  .meta({ description: "Drain policy for removed or disabled mappings and for shutdown" });
export type DrainConfig = z.output<typeof DrainSchema>;

/**
 * How the module reconnects to IoT Hub after an outage (ADR 0031): the phase of its slot in the
 * fleet's spread period, assigned by the rollout from an evenly spread sequence over the fleet
 * (`evenPhase` in lib/backoff.ts). Absent: the module keeps a random phase of its own (ADR 0027).
 * A top-level part of its own, because that is the one place a module from before it tolerates
 * (schema 1.0 ignores an unknown top-level field and applies the rest; an unknown field inside
 * `relay` or `drain` would cost it that whole part).
 */
export const HubReconnectSchema = z
  .strictObject({
    phase: z
      .number()
      .min(0)
      .lt(1)
      .meta({ description: "0 ≤ phase < 1: where in each reconnect period the module's slot lies" }),
  })
  .meta({ description: "Reconnect slot after a hub outage; absent: a random phase of the module's own" });
export type HubReconnectConfig = z.output<typeof HubReconnectSchema>;

/**
 * Names every plain JavaScript object already answers to (`constructor`, `toString`,
 * `__proto__`, …). They are refused as mapping names rather than made to work: code that keeps
 * mappings in plain objects (ours, zod's record parser, the device SDK's twin merge, which skips
 * `__proto__`) would make them vanish or resolve to a built-in function. ADR 0011.
 */
export const RESERVED_MAPPING_NAMES: ReadonlySet<string> = new Set(
  Object.getOwnPropertyNames(Object.prototype),
);

/** The logical port a mapping answers to: its `portName`, or else its name. */
export function logicalPortOf(name: string, mapping: { portName?: string | undefined }): string {
  return mapping.portName ?? name;
}

/**
 * Mapping names whose logical port an earlier mapping (by name order) already answers to: one
 * logical port, one target. Pure; used by the schema, the module's validator and the rollout.
 */
export function logicalPortClashes(
  mappings: Record<string, { portName?: string | undefined }>,
): Array<{ name: string; portName: string; holder: string }> {
  const holders = new Map<string, string>();
  const clashes: Array<{ name: string; portName: string; holder: string }> = [];
  for (const name of Object.keys(mappings).sort()) {
    const portName = logicalPortOf(name, mappings[name] ?? {});
    const holder = holders.get(portName);
    if (holder === undefined) holders.set(portName, name);
    else clashes.push({ name, portName, holder });
  }
  return clashes;
}

/** The message for one clash, the same wherever it is found. */
export function logicalPortClashMessage(clash: { portName: string; holder: string }): string {
  return `logical port "${clash.portName}" is already mapping "${clash.holder}"'s; each logical port names one mapping`;
}

/** The one mapping name rule: pattern plus no reserved name. */
export function isMappingName(name: string): boolean {
  return MAPPING_NAME_PATTERN.test(name) && !RESERVED_MAPPING_NAMES.has(name);
}

export const MappingNameSchema = z
  .string()
  .regex(MAPPING_NAME_PATTERN, "mapping names are 1-64 characters of A-Z a-z 0-9 _ -")
  .refine((name) => !RESERVED_MAPPING_NAMES.has(name), {
    error: (issue) =>
      `"${String(issue.input)}" is a reserved name (a built-in property of JavaScript objects); choose another mapping name`,
  });

export const DesiredPropertiesSchema = z
  .strictObject({
    schemaVersion: z
      .string()
      .regex(/^1\.\d+$/, `must be a 1.x version (this module speaks ${SCHEMA_VERSION})`)
      .default(SCHEMA_VERSION),
    relay: RelaySchema.optional(),
    mappings: z
      .record(MappingNameSchema, MappingSchema)
      .refine((m) => Object.keys(m).length <= MAX_MAPPINGS, `at most ${MAX_MAPPINGS} mappings per site`)
      .superRefine((m, ctx) => {
        for (const clash of logicalPortClashes(m))
          ctx.addIssue({
            code: "custom",
            path: [clash.name, "portName"],
            message: logicalPortClashMessage(clash),
          });
      })
      .default({}),
    drain: DrainSchema.default({ onRemove: "drain", timeoutMs: 30_000 }),
    hubReconnect: HubReconnectSchema.optional(),
  })
  .meta({
    title: "relayListener module twin: desired properties",
    description:
      "Written by the rollout service (Registry.updateModuleTwin). Read-only twin keys ($version, $metadata) are ignored by the module.",
  });

/** The applied configuration: every default filled in. */
export type RelayListenerConfig = z.output<typeof DesiredPropertiesSchema>;
/** What a writer (the rollout service) may send: defaults optional, `sasKey` a plain string. */
export type DesiredPropertiesInput = z.input<typeof DesiredPropertiesSchema>;

/** Configuration before any twin arrived: no relay, no mappings. */
export function defaultConfig(): RelayListenerConfig {
  return DesiredPropertiesSchema.parse({});
}
