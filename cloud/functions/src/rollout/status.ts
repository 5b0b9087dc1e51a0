/**
 * A fleet status row per module twin (site, listener online, mappings, active connections,
 * last error, drift), computed from one twin query's results: pure, shared by the CLI, the
 * HTTP API and reconcile.
 */

import { keyFingerprint } from "../../../../lib/hyco/sas.ts";
import { parseHybridConnection } from "./context.ts";
import type { JsonObject, ModuleTwinView } from "./hub.ts";

export interface SiteStatus {
  siteId: string;
  deviceId: string;
  listenerOnline: boolean;
  listenerStatus: string;
  mappings: number;
  activeConnections: number;
  lastError?: string;
  desiredVersion: number;
  appliedVersion?: number;
  /** Problems the module side shows: not applied yet, errors, offline, old key. */
  drift: string[];
}

const obj = (v: unknown): JsonObject =>
  typeof v === "object" && v !== null && !Array.isArray(v) ? (v as JsonObject) : {};

/** Site id of a module twin, from the hybrid connection name it was given (`site-<id>[.k<n>]`). */
export function siteIdOfTwin(twin: ModuleTwinView): string | undefined {
  const hc = obj(twin.desired.relay).hybridConnection;
  return typeof hc === "string" ? parseHybridConnection(hc)?.siteId : undefined;
}

/** Status of one site's module from its twin. */
export function siteStatusFromTwin(twin: ModuleTwinView): SiteStatus {
  const reported = twin.reported;
  const relay = obj(reported.relay);
  const desiredRelay = obj(twin.desired.relay);
  const mappingsReported = obj(reported.mappings);
  const desiredMappings = Object.keys(obj(twin.desired.mappings)).filter((k) => !k.startsWith("$"));
  let active = 0;
  let lastError: string | undefined;
  for (const [name, m] of Object.entries(mappingsReported)) {
    if (name.startsWith("$")) continue;
    const mo = obj(m);
    if (typeof mo.activeConnections === "number") active += mo.activeConnections;
    if (typeof mo.lastError === "string" && mo.lastError) lastError = `${name}: ${mo.lastError}`;
  }
  const errors = Array.isArray(reported.errors) ? reported.errors.map(obj) : [];
  const firstError = errors[0];
  if (firstError) lastError = `${String(firstError.path ?? "")}: ${String(firstError.message ?? "")}`;
  if (typeof relay.lastError === "string" && relay.lastError && !lastError) lastError = relay.lastError;

  const applied =
    typeof reported.appliedDesiredVersion === "number" ? reported.appliedDesiredVersion : undefined;
  const status = typeof relay.status === "string" ? relay.status : "unknown";
  const drift: string[] = [];
  if (applied === undefined) drift.push("never reported");
  else if (applied < twin.desiredVersion)
    drift.push(`desired v${twin.desiredVersion} not applied (at v${applied})`);
  if (errors.length > 0) drift.push(`${errors.length} config error(s)`);
  if (applied !== undefined && status !== "online") drift.push("listener offline");
  if (
    applied !== undefined &&
    typeof desiredRelay.sasKey === "string" &&
    typeof relay.keyFingerprint === "string" &&
    relay.keyFingerprint !== keyFingerprint(desiredRelay.sasKey)
  ) {
    drift.push("module uses an old key");
  }
  const out: SiteStatus = {
    siteId: siteIdOfTwin(twin) ?? twin.deviceId,
    deviceId: twin.deviceId,
    listenerOnline: status === "online",
    listenerStatus: status,
    mappings: desiredMappings.length,
    activeConnections: active,
    desiredVersion: twin.desiredVersion,
    drift,
  };
  if (applied !== undefined) out.appliedVersion = applied;
  if (lastError !== undefined) out.lastError = lastError;
  return out;
}
