/**
 * The module twin's desired properties rollout writes (twin contract in `lib/twin/`), and the
 * JSON merge patch that turns the current desired section into the new one (IoT Hub PATCH is a
 * merge: removed keys must be sent as `null`).
 */
import type { JsonObject } from "./hub.ts";
import type { MappingSpec } from "./schemas.ts";

export const MODULE_ID = "relayListener";
export const TWIN_SCHEMA_VERSION = "1.0";

export interface RelayCredentials {
  endpoint: string;
  hybridConnection: string;
  sasKeyName: string;
  sasKey: string;
}

/** Desired properties for a site: relay credentials plus the module-side fields of each mapping. */
export function buildDesired(relay: RelayCredentials, mappings: Record<string, MappingSpec>): JsonObject {
  const twinMappings: JsonObject = {};
  for (const [name, m] of Object.entries(mappings)) {
    // defineProperty, not assignment: a key is always an own data property, whatever its name.
    defineOwn(twinMappings, name, {
      target: m.target,
      enabled: m.enabled,
      maxConnections: m.maxConnections,
      connectTimeoutMs: m.connectTimeoutMs,
      // Unset: the module keeps no idle timer of its own; the gateway's default closes idle tunnels.
      ...(m.idleTimeoutMs !== undefined ? { idleTimeoutMs: m.idleTimeoutMs } : {}),
      proxyProtocol: m.proxyProtocol,
      // Absent: the module matches the mapping's name (twin keys cannot hold azbridge's '.').
      ...(m.portName !== undefined ? { portName: m.portName } : {}),
    });
  }
  return {
    schemaVersion: TWIN_SCHEMA_VERSION,
    relay: { ...relay },
    mappings: twinMappings,
    drain: { onRemove: "drain", timeoutMs: 30_000 },
  };
}

const isObject = (v: unknown): v is JsonObject => typeof v === "object" && v !== null && !Array.isArray(v);

function defineOwn(target: JsonObject, key: string, value: JsonObject[string]): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/**
 * The merge patch from `current` to `next`: changed and new values, `null` for removed keys.
 * `$`-prefixed keys (`$version`, `$metadata`) are read-only and ignored.
 */
export function mergePatch(current: JsonObject, next: JsonObject): JsonObject {
  const patch: JsonObject = {};
  for (const key of Object.keys(current)) {
    if (key.startsWith("$")) continue;
    if (!Object.hasOwn(next, key)) defineOwn(patch, key, null);
  }
  for (const [key, value] of Object.entries(next)) {
    const old = Object.hasOwn(current, key) ? current[key] : undefined;
    if (isObject(value) && isObject(old)) {
      const sub = mergePatch(old, value);
      if (Object.keys(sub).length > 0) defineOwn(patch, key, sub);
    } else if (JSON.stringify(old) !== JSON.stringify(value)) {
      defineOwn(patch, key, value);
    }
  }
  return patch;
}

/** Strips `$version`/`$metadata` so a read twin compares with a built one. */
export function withoutMeta(desired: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(desired)) {
    if (k.startsWith("$")) continue;
    defineOwn(out, k, isObject(v) ? withoutMeta(v) : v);
  }
  return out;
}
