/**
 * Applying a desired-properties document part by part. A bad patch never takes the site down:
 * every part that validates is applied, every part that does not keeps its last good value, and
 * each problem comes back as `{ path, message }` for reported properties.
 *
 * Parts: `schemaVersion` (an unknown major rejects the whole document: its meaning is unknown),
 * `relay` (all or nothing: a half-valid relay would register with the wrong credentials),
 * each mapping on its own (a bad mapping never takes the others with it), `drain` and
 * `hubReconnect`. An unknown top-level field is reported and ignored, the rest applied: that is
 * how a module tolerates a part a newer rollout writes (ADR 0031).
 */
import type { z } from "zod";
import {
  DesiredPropertiesSchema,
  DrainSchema,
  HubReconnectSchema,
  logicalPortClashes,
  logicalPortClashMessage,
  logicalPortOf,
  MAX_MAPPINGS,
  type MappingConfig,
  MappingNameSchema,
  MappingSchema,
  type RelayListenerConfig,
  RelaySchema,
  SCHEMA_VERSION,
} from "./schema.ts";

/** One rejected part: dotted twin path (twin keys cannot contain `.`) and a plain message. */
export interface TwinError {
  path: string;
  message: string;
}

export interface ValidationResult {
  /** The configuration to run: valid parts of `raw`, last good values for the rest. */
  config: RelayListenerConfig;
  errors: TwinError[];
}

/** Messages are bounded: they travel in reported properties (32 KB for the whole section). */
export const MAX_ERROR_MESSAGE = 160;

function truncate(text: string): string {
  return text.length <= MAX_ERROR_MESSAGE ? text : `${text.slice(0, MAX_ERROR_MESSAGE - 1)}…`;
}

function joinPath(prefix: string, path: readonly PropertyKey[]): string {
  return [prefix, ...path.map(String)].filter((p) => p !== "").join(".");
}

function issuesToErrors(prefix: string, error: z.ZodError): TwinError[] {
  return error.issues.map((issue) => {
    let message = issue.message;
    if (issue.code === "unrecognized_keys") message = `unknown field(s): ${issue.keys.join(", ")}`;
    else if (issue.code === "invalid_type" && message.includes("received undefined")) message = "is required";
    return { path: joinPath(prefix, issue.path), message: truncate(message) };
  });
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Drops twin read-only keys (`$version`, `$metadata`, …) before strict validation. */
function withoutTwinMetadata(raw: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) if (!key.startsWith("$")) out[key] = value;
  return out;
}

const KNOWN_TOP_LEVEL = new Set(["schemaVersion", "relay", "mappings", "drain", "hubReconnect"]);

/**
 * Validates a full desired-properties document (as `twin.properties.desired` holds it after the
 * SDK merged every patch) against the last good configuration. Never throws, whatever `raw` is.
 */
export function validateDesired(raw: unknown, lastGood: RelayListenerConfig): ValidationResult {
  if (!isPlainObject(raw)) {
    return { config: lastGood, errors: [{ path: "", message: "desired properties must be a JSON object" }] };
  }
  const doc = withoutTwinMetadata(raw);
  // Fast path: a fully valid document is the common case. Not with an own `__proto__` mapping key:
  // zod's record parser drops that key silently, and it must be reported like any bad name.
  const hiddenKey = isPlainObject(doc.mappings) && Object.hasOwn(doc.mappings, "__proto__");
  const whole = hiddenKey ? undefined : DesiredPropertiesSchema.safeParse(doc);
  if (whole?.success) return { config: whole.data, errors: [] };

  const errors: TwinError[] = [];
  const version = doc.schemaVersion ?? SCHEMA_VERSION;
  if (typeof version !== "string" || !/^1\.\d+$/.test(version)) {
    return {
      config: lastGood,
      errors: [
        {
          path: "schemaVersion",
          message: `unsupported schemaVersion ${JSON.stringify(version)}; this module speaks ${SCHEMA_VERSION}, nothing applied`,
        },
      ],
    };
  }
  for (const key of Object.keys(doc)) {
    if (!KNOWN_TOP_LEVEL.has(key)) errors.push({ path: key, message: "unknown field, ignored" });
  }

  let relay = lastGood.relay;
  if (doc.relay === undefined || doc.relay === null) relay = undefined;
  else {
    const parsed = RelaySchema.safeParse(doc.relay);
    if (parsed.success) relay = parsed.data;
    else errors.push(...issuesToErrors("relay", parsed.error).map(keptOld("relay", lastGood.relay)));
  }

  const mappings = validateMappings(doc.mappings, lastGood.mappings, errors);

  let drain = lastGood.drain;
  if (doc.drain === undefined || doc.drain === null) drain = DrainSchema.parse({});
  else {
    const parsed = DrainSchema.safeParse(doc.drain);
    if (parsed.success) drain = parsed.data;
    else errors.push(...issuesToErrors("drain", parsed.error).map(keptOld("drain", lastGood.drain)));
  }

  let hubReconnect = lastGood.hubReconnect;
  if (doc.hubReconnect === undefined || doc.hubReconnect === null) hubReconnect = undefined;
  else {
    const parsed = HubReconnectSchema.safeParse(doc.hubReconnect);
    if (parsed.success) hubReconnect = parsed.data;
    else
      errors.push(
        ...issuesToErrors("hubReconnect", parsed.error).map(keptOld("hubReconnect", lastGood.hubReconnect)),
      );
  }

  const config: RelayListenerConfig = { schemaVersion: version, mappings, drain };
  if (relay) config.relay = relay;
  if (hubReconnect) config.hubReconnect = hubReconnect;
  return { config, errors };
}

function keptOld(_part: string, old: unknown): (e: TwinError) => TwinError {
  const suffix = old === undefined ? "; part not applied" : "; last good value kept";
  return (e) => ({ path: e.path, message: truncate(`${e.message}${suffix}`) });
}

function validateMappings(
  raw: unknown,
  lastGood: Record<string, MappingConfig>,
  errors: TwinError[],
): Record<string, MappingConfig> {
  if (raw === undefined || raw === null) return {};
  if (!isPlainObject(raw)) {
    errors.push({
      path: "mappings",
      message: "must be an object keyed by mapping name; last good mappings kept",
    });
    return lastGood;
  }
  const out: Record<string, MappingConfig> = {};
  let count = 0;
  for (const [name, value] of Object.entries(raw)) {
    // The SDK deletes null-valued keys when it merges a patch; a null here means "removed" too.
    if (value === null || value === undefined) continue;
    const path = `mappings.${name}`;
    const nameCheck = MappingNameSchema.safeParse(name);
    if (!nameCheck.success) {
      const reason = nameCheck.error.issues[0]?.message ?? "invalid mapping name";
      errors.push({ path, message: truncate(`${reason}; ignored`) });
      continue;
    }
    if (count >= MAX_MAPPINGS) {
      errors.push({ path, message: `more than ${MAX_MAPPINGS} mappings per site; ignored` });
      continue;
    }
    const parsed = MappingSchema.safeParse(value);
    if (parsed.success) {
      out[name] = parsed.data;
      count++;
      continue;
    }
    // Own properties only: a name must never resolve to something Object.prototype carries.
    const old = Object.hasOwn(lastGood, name) ? lastGood[name] : undefined;
    errors.push(...issuesToErrors(path, parsed.error).map(keptOld(path, old)));
    if (old) {
      out[name] = old;
      count++;
    }
  }
  return withoutClashes(out, lastGood, errors);
}

/**
 * One logical port, one mapping: a mapping whose logical port an earlier one (by name) already
 * answers to keeps its last good value if that is free, else it is not applied.
 */
function withoutClashes(
  mappings: Record<string, MappingConfig>,
  lastGood: Record<string, MappingConfig>,
  errors: TwinError[],
): Record<string, MappingConfig> {
  const clashes = logicalPortClashes(mappings);
  if (clashes.length === 0) return mappings;
  const out = { ...mappings };
  for (const clash of clashes) {
    delete out[clash.name];
    const old = Object.hasOwn(lastGood, clash.name) ? lastGood[clash.name] : undefined;
    const taken =
      old && Object.entries(out).some(([n, m]) => logicalPortOf(n, m) === logicalPortOf(clash.name, old));
    if (old && !taken) out[clash.name] = old;
    const suffix = old && !taken ? "; last good value kept" : "; not applied";
    errors.push({
      path: `mappings.${clash.name}.portName`,
      message: truncate(`${logicalPortClashMessage(clash)}${suffix}`),
    });
  }
  return out;
}
