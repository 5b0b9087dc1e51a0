/**
 * A fleet status row per module twin (site, listener online, mappings, active connections,
 * last error, drift), computed from one twin query's results: pure, shared by the CLI, the
 * HTTP API and reconcile.
 */

import { keyFingerprint } from "../../../../lib/hyco/sas.ts";
import { type GatewayStatus, isStale, type UnboundPort } from "../../../../lib/ledger/index.ts";
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
  /**
   * The module on the device as its `$edgeAgent` reports it (IoT Edge's runtimeStatus: running,
   * backoff, stopped, failed; "not deployed"), or "no edge agent report" before the device's
   * IoT Edge runtime has reported.
   */
  deployment?: string;
  /** The module image the device's edge agent runs, when it reports one. */
  image?: string;
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

/**
 * Adds each device's deployment state from its `$edgeAgent` module twin (the same kind of query
 * as the module twins'): the module's runtime status and image, and as drift a module the
 * device's deployment leaves out or that does not run, or a deployment its agent refused. A device
 * whose agent has never reported gets no drift for it (a device still being set up). Pure.
 */
export function withDeploymentState(
  sites: SiteStatus[],
  agentTwins: readonly ModuleTwinView[],
  moduleId: string,
): SiteStatus[] {
  const byDevice = new Map(agentTwins.map((t) => [t.deviceId, t.reported]));
  return sites.map((site) => {
    const reported = byDevice.get(site.deviceId);
    if (!reported || reported.lastDesiredVersion === undefined)
      return { ...site, deployment: "no edge agent report" };
    const drift = [...site.drift];
    const status = obj(reported.lastDesiredStatus);
    if (typeof status.code === "number" && status.code !== 200)
      drift.push(`edge agent refused its deployment (${status.code}): ${String(status.description ?? "")}`);
    const modules = obj(reported.modules);
    if (!Object.hasOwn(modules, moduleId) || modules[moduleId] === null) {
      drift.push(`${moduleId} is not in the device's deployment`);
      return { ...site, deployment: "not deployed", drift };
    }
    const m = obj(modules[moduleId]);
    const runtime = typeof m.runtimeStatus === "string" ? m.runtimeStatus : "unknown";
    if (runtime !== "running")
      drift.push(
        `${moduleId} ${runtime} on the device${typeof m.statusDescription === "string" && m.statusDescription ? ` (${m.statusDescription})` : ""}`,
      );
    const image = obj(m.settings).image;
    return { ...site, deployment: runtime, ...(typeof image === "string" ? { image } : {}), drift };
  });
}

/** A gateway instance as `status` shows it: what it reported and whether the report is current. */
export interface GatewayView {
  instanceId: string;
  updatedAt: string;
  /** The row is older than three of its heartbeats: the instance stopped without removing it. */
  stale: boolean;
  ready: boolean;
  listening: number;
  unbound: UnboundPort[];
}

/**
 * Adds what the gateways report to the sites' drift: a public port of a site that a (current)
 * gateway cannot bind, named with its mapping, the gateway and the error. Pure.
 */
export function withGatewayDrift(
  sites: SiteStatus[],
  gateways: readonly GatewayStatus[],
  routes: readonly { port: number; siteId?: string; portName?: string }[],
  now = Date.now(),
): { sites: SiteStatus[]; gateways: GatewayView[] } {
  const views = gateways.map((g) => ({ ...g, stale: isStale(g, now) }));
  const drift = new Map<string, string[]>();
  for (const g of views) {
    if (g.stale) continue;
    for (const u of g.unbound)
      for (const r of routes) {
        if (r.port !== u.port || !r.siteId) continue;
        const list = drift.get(r.siteId) ?? [];
        list.push(
          `public port ${u.port}${r.portName ? ` (${r.portName})` : ""} not listening on gateway ${g.instanceId}: ${u.error}`,
        );
        drift.set(r.siteId, list);
      }
  }
  return {
    sites: sites.map((s) =>
      drift.has(s.siteId) ? { ...s, drift: [...s.drift, ...(drift.get(s.siteId) ?? [])] } : s,
    ),
    gateways: views.map(({ heartbeatMs: _h, ...v }) => v),
  };
}
