/**
 * What changed between two applied configurations, as typed changes the module's reconciler acts
 * on. Only what changed appears, so the reconciler touches nothing else: adding a mapping never
 * disturbs another mapping's live connections, a new key never drops a connection.
 */
import type { DrainConfig, MappingConfig, RelayConfig, RelayListenerConfig } from "./schema.ts";

export type ConfigChange =
  /** A relay section appeared: start listening. */
  | { kind: "relay-added"; relay: RelayConfig }
  /** The relay section was removed: stop listening. */
  | { kind: "relay-removed" }
  /** Endpoint or hybrid connection changed: close the listeners and register again. */
  | { kind: "relay-changed"; relay: RelayConfig }
  /** Only the rule name or key changed: renew credentials on the live listeners, drop nothing. */
  | { kind: "relay-credentials"; relay: RelayConfig }
  | { kind: "mapping-added"; name: string; mapping: MappingConfig }
  | { kind: "mapping-removed"; name: string; previous: MappingConfig }
  /** Fields other than `enabled` changed; `changed` lists them. */
  | { kind: "mapping-updated"; name: string; mapping: MappingConfig; changed: Array<keyof MappingConfig> }
  | { kind: "mapping-enabled"; name: string; mapping: MappingConfig; changed: Array<keyof MappingConfig> }
  | { kind: "mapping-disabled"; name: string; mapping: MappingConfig; changed: Array<keyof MappingConfig> }
  | { kind: "drain-changed"; drain: DrainConfig };

const MAPPING_FIELDS: Array<keyof MappingConfig> = [
  "target",
  "enabled",
  "maxConnections",
  "connectTimeoutMs",
  "idleTimeoutMs",
  "proxyProtocol",
  "portName",
];

function diffRelay(a: RelayConfig | undefined, b: RelayConfig | undefined): ConfigChange[] {
  if (!a && !b) return [];
  if (!a && b) return [{ kind: "relay-added", relay: b }];
  if (a && !b) return [{ kind: "relay-removed" }];
  if (!a || !b) return [];
  if (a.endpoint !== b.endpoint || a.hybridConnection !== b.hybridConnection) {
    return [{ kind: "relay-changed", relay: b }];
  }
  if (a.sasKeyName !== b.sasKeyName || a.sasKey !== b.sasKey)
    return [{ kind: "relay-credentials", relay: b }];
  return [];
}

/** Changes that turn `previous` into `next`, relay first, then mappings by name, then drain. */
export function diffConfig(previous: RelayListenerConfig, next: RelayListenerConfig): ConfigChange[] {
  const changes = diffRelay(previous.relay, next.relay);
  const names = [...new Set([...Object.keys(previous.mappings), ...Object.keys(next.mappings)])].sort();
  for (const name of names) {
    // Own properties only, so no name can resolve to a built-in of Object.prototype.
    const a = Object.hasOwn(previous.mappings, name) ? previous.mappings[name] : undefined;
    const b = Object.hasOwn(next.mappings, name) ? next.mappings[name] : undefined;
    if (!a && b) changes.push({ kind: "mapping-added", name, mapping: b });
    else if (a && !b) changes.push({ kind: "mapping-removed", name, previous: a });
    else if (a && b) {
      const changed = MAPPING_FIELDS.filter((f) => a[f] !== b[f]);
      if (changed.length === 0) continue;
      if (a.enabled !== b.enabled) {
        changes.push({ kind: b.enabled ? "mapping-enabled" : "mapping-disabled", name, mapping: b, changed });
      } else changes.push({ kind: "mapping-updated", name, mapping: b, changed });
    }
  }
  if (previous.drain.onRemove !== next.drain.onRemove || previous.drain.timeoutMs !== next.drain.timeoutMs) {
    changes.push({ kind: "drain-changed", drain: next.drain });
  }
  return changes;
}
