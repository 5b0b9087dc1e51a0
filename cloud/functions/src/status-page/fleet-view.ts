/**
 * What the fleet status page shows, computed from three reads: the ledger's sites (mappings and
 * public ports), one IoT Hub query for the module twins (devices, listeners, deployment state,
 * drift, errors), and the gateways' metrics (live connections, bytes, refusals). Pure functions
 * plus a short-lived cache, so many open pages cost one IoT Hub query per refresh interval.
 */

import { MODULE_ID } from "../rollout/desired-twin.ts";
import type { ModuleTwinView } from "../rollout/hub.ts";
import type { SiteView } from "../rollout/service.ts";
import { type SiteStatus, siteIdOfTwin, siteStatusFromTwin, withDeploymentState } from "../rollout/status.ts";
import type { GatewayTraffic, RouteTraffic } from "./gateway-metrics.ts";

export interface DeviceView {
  deviceId: string;
  moduleId: string;
  /** IoT Hub sees the module connected and the module reports itself running. */
  online: boolean;
  connectionState: string;
  lastSeen?: string;
  /**
   * The module's deployment state: what the device's IoT Edge agent (`$edgeAgent`) reports it
   * runs (running, backoff, stopped, failed, not deployed), or, before the agent has reported,
   * what the module says of itself (running, offline, not reported).
   */
  deployment: string;
  /** The module image the device's edge agent runs, when it reports one. */
  image?: string;
  moduleVersion?: string;
  listenerStatus: string;
  listenersOnline: number;
  listeners: number;
  desiredVersion: number;
  appliedVersion?: number;
}

export interface MappingRow {
  name: string;
  target: string;
  enabled: boolean;
  publicPort?: number;
  publicHost?: string;
  /** The module's reported state of this mapping (active, refused, error, …). */
  state: string;
  activeConnections: number;
  bytesIn: number;
  bytesOut: number;
  lastError?: string;
}

export type SiteHealth = "ok" | "degraded" | "offline";

export interface SiteRow {
  siteId: string;
  deviceId: string;
  profile: string;
  /** Words a search matches besides the site id: device id, profile. */
  tags: string[];
  health: SiteHealth;
  devices: DeviceView[];
  mappings: MappingRow[];
  activeConnections: number;
  bytesIn: number;
  bytesOut: number;
  refusals: Record<string, number>;
  drift: string[];
  lastErrors: string[];
}

export interface FleetSummary {
  sites: number;
  sitesOk: number;
  sitesDegraded: number;
  sitesOffline: number;
  devicesOnline: number;
  devices: number;
  activeConnections: number;
  gateways: number;
  gatewaysUp: number;
}

export interface FleetView {
  generatedAt: string;
  summary: FleetSummary;
  sites: SiteRow[];
}

const obj = (v: unknown): Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};

function deviceView(twin: ModuleTwinView, status: SiteStatus): DeviceView {
  const reported = obj(twin.reported);
  const relay = obj(reported.relay);
  const listeners = Array.isArray(relay.listeners) ? relay.listeners.map(obj) : [];
  const ownStatus = typeof reported.status === "string" ? reported.status : "not reported";
  const connectionState = twin.connectionState ?? "unknown";
  // The edge agent's word when it has reported (rollout/status.ts withDeploymentState).
  const byAgent = status.deployment !== undefined && status.deployment !== "no edge agent report";
  const out: DeviceView = {
    deviceId: twin.deviceId,
    moduleId: twin.moduleId,
    online: connectionState === "Connected" && ownStatus === "running",
    connectionState,
    deployment: byAgent ? (status.deployment as string) : ownStatus,
    listenerStatus: status.listenerStatus,
    listenersOnline: listeners.filter((l) => l.status === "online").length,
    listeners: listeners.length,
    desiredVersion: twin.desiredVersion,
  };
  // IoT Hub's "never" is the epoch; show it as unknown.
  if (twin.lastActivityTime && !twin.lastActivityTime.startsWith("0001-"))
    out.lastSeen = twin.lastActivityTime;
  if (typeof reported.moduleVersion === "string") out.moduleVersion = reported.moduleVersion;
  if (status.appliedVersion !== undefined) out.appliedVersion = status.appliedVersion;
  if (status.image) out.image = status.image;
  return out;
}

const noTraffic: RouteTraffic = { activeConnections: 0, bytesIn: 0, bytesOut: 0, refusals: {} };

/** Joins sites, twins and traffic into one row per site, sorted by site id. */
export function buildFleetView(
  sites: SiteView[],
  twins: ModuleTwinView[],
  traffic: GatewayTraffic,
  now = new Date(),
  /** The devices' `$edgeAgent` twins: each module's deployment state (none: the module's own word). */
  agentTwins: readonly ModuleTwinView[] = [],
): FleetView {
  const twinsBySite = new Map<string, ModuleTwinView[]>();
  for (const twin of twins) {
    const id = siteIdOfTwin(twin);
    if (!id) continue;
    const list = twinsBySite.get(id) ?? [];
    list.push(twin);
    twinsBySite.set(id, list);
  }
  const rows: SiteRow[] = sites.map((site) => {
    const siteTwins = twinsBySite.get(site.siteId) ?? [];
    const statuses = withDeploymentState(siteTwins.map(siteStatusFromTwin), agentTwins, MODULE_ID);
    const devices = siteTwins.map((twin, i) => deviceView(twin, statuses[i] ?? siteStatusFromTwin(twin)));
    const reportedMappings = obj(obj(siteTwins[0]?.reported).mappings);
    const refusals: Record<string, number> = {};
    const mappings: MappingRow[] = Object.entries(site.mappings).map(([name, m]) => {
      const key =
        m.publicPort === undefined
          ? undefined
          : m.publicHost
            ? `${m.publicPort}:${m.publicHost}`
            : String(m.publicPort);
      const t = (key && traffic.routes.get(key)) || noTraffic;
      for (const [reason, n] of Object.entries(t.refusals)) refusals[reason] = (refusals[reason] ?? 0) + n;
      const rm = obj(reportedMappings[name]);
      const row: MappingRow = {
        name,
        target: m.target,
        enabled: m.enabled !== false,
        state: typeof rm.state === "string" ? rm.state : "not reported",
        activeConnections: t.activeConnections,
        bytesIn: t.bytesIn,
        bytesOut: t.bytesOut,
      };
      if (m.publicPort !== undefined) row.publicPort = m.publicPort;
      if (m.publicHost) row.publicHost = m.publicHost;
      if (typeof rm.lastError === "string" && rm.lastError) row.lastError = rm.lastError;
      return row;
    });
    const drift = [...new Set(statuses.flatMap((s) => s.drift))];
    if (siteTwins.length === 0) drift.push("no module twin");
    else
      for (const d of site.devices)
        if (!siteTwins.some((t) => t.deviceId === d.deviceId)) drift.push(`${d.deviceId}: no module twin`);
    const lastErrors = [...new Set(statuses.flatMap((s) => (s.lastError ? [s.lastError] : [])))];
    const online = devices.filter((d) => d.online).length;
    const health: SiteHealth =
      online === 0 ? "offline" : online < devices.length || drift.length > 0 ? "degraded" : "ok";
    return {
      siteId: site.siteId,
      deviceId: site.deviceId,
      profile: site.profile,
      tags: [...new Set([...site.devices.map((d) => d.deviceId), site.profile])],
      health,
      devices,
      mappings,
      activeConnections: mappings.reduce((n, m) => n + m.activeConnections, 0),
      bytesIn: mappings.reduce((n, m) => n + m.bytesIn, 0),
      bytesOut: mappings.reduce((n, m) => n + m.bytesOut, 0),
      refusals,
      drift,
      lastErrors,
    };
  });
  rows.sort((a, b) => a.siteId.localeCompare(b.siteId));
  const devices = rows.flatMap((r) => r.devices);
  return {
    generatedAt: now.toISOString(),
    summary: {
      sites: rows.length,
      sitesOk: rows.filter((r) => r.health === "ok").length,
      sitesDegraded: rows.filter((r) => r.health === "degraded").length,
      sitesOffline: rows.filter((r) => r.health === "offline").length,
      devicesOnline: devices.filter((d) => d.online).length,
      devices: devices.length,
      activeConnections: rows.reduce((n, r) => n + r.activeConnections, 0),
      gateways: traffic.gateways,
      gatewaysUp: traffic.gatewaysUp,
    },
    sites: rows,
  };
}

export interface SitePage {
  generatedAt: string;
  summary: FleetSummary;
  query: string;
  /** Sites matching the query (before paging). */
  total: number;
  page: number;
  pageSize: number;
  pages: number;
  sites: SiteRow[];
}

export const MAX_PAGE_SIZE = 1000;

/**
 * One page of the sites whose id, device id or profile contains `query` (case-insensitive);
 * `health:offline` style terms filter by health.
 */
export function pageOfSites(view: FleetView, query: string, page: number, pageSize: number): SitePage {
  const size = Math.min(MAX_PAGE_SIZE, Math.max(1, Math.floor(pageSize) || 50));
  const terms = query.toLowerCase().split(/\s+/).filter(Boolean).slice(0, 8);
  const matching = view.sites.filter((s) =>
    terms.every((term) => {
      if (term.startsWith("health:")) return s.health === term.slice(7);
      return s.siteId.toLowerCase().includes(term) || s.tags.some((t) => t.toLowerCase().includes(term));
    }),
  );
  const pages = Math.max(1, Math.ceil(matching.length / size));
  const current = Math.min(pages, Math.max(1, Math.floor(page) || 1));
  return {
    generatedAt: view.generatedAt,
    summary: view.summary,
    query: query.slice(0, 200),
    total: matching.length,
    page: current,
    pageSize: size,
    pages,
    sites: matching.slice((current - 1) * size, current * size),
  };
}

/** Caches a view for `ttlMs`; concurrent callers share one computation. */
export function cachedView(compute: () => Promise<FleetView>, ttlMs: number): () => Promise<FleetView> {
  let cached: { at: number; view: Promise<FleetView> } | undefined;
  return () => {
    const now = Date.now();
    if (!cached || now - cached.at > ttlMs) {
      const view = compute();
      cached = { at: now, view };
      // A failure is not cached: the next request tries again.
      view.catch(() => {
        if (cached?.view === view) cached = undefined;
      });
    }
    return cached.view;
  };
}
