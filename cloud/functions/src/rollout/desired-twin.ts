/**
 * The module twin's desired properties rollout writes (twin contract in `lib/twin/`). The patch
 * that turns the current desired section into the new one is `computeMergePatch`
 * (`lib/twin/merge-patch.ts`): IoT Hub PATCH is a merge, removed keys must be sent as `null`.
 */
import type { JsonObject } from "./hub.ts";
import type { MappingSpec } from "./schemas.ts";

export const MODULE_ID = "relayListener";
/** 1.1: `hubReconnect` (ADR 0031); a 1.0 module ignores it and applies the rest. */
export const TWIN_SCHEMA_VERSION = "1.1";

export interface RelayCredentials {
  endpoint: string;
  hybridConnection: string;
  sasKeyName: string;
  sasKey: string;
}

/**
 * Desired properties for one device of a site: relay credentials, the module-side fields of each
 * mapping, and the module's IoT Hub reconnect phase when it has one (reconnect-phases.ts).
 */
export function buildDesired(
  relay: RelayCredentials,
  mappings: Record<string, MappingSpec>,
  hubReconnectPhase?: number,
): JsonObject {
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
    ...(hubReconnectPhase !== undefined ? { hubReconnect: { phase: hubReconnectPhase } } : {}),
  };
}

const isObject = (v: unknown): v is JsonObject => typeof v === "object" && v !== null && !Array.isArray(v);

function defineOwn(target: JsonObject, key: string, value: JsonObject[string]): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
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
