/**
 * Sites spread over relay namespaces with capacity accounting (issue 18, ADR 0025). An Azure
 * Relay namespace allows a fixed number of concurrent connections (5,000 by default); each
 * site holds some of them in its namespace:
 *
 *   site connections = devices × listener channels per device + standby connections budgeted
 *
 * (every listener control channel is a connection; each of the gateways' standbys is a relayed
 * connection held open at the relay). A new site goes to the first configured namespace where it
 * fits under the fill limit (80 % of the quota by default: headroom for reconnect overlap,
 * demand-grown standby pools and placements racing on other rollout instances), so the fleet
 * uses as few namespaces as its size needs and none is filled past the limit.
 *
 * The load per namespace comes from the ledger (each site row names its relay endpoint and its
 * spec its devices), read at most every `refreshMs` and kept up to date in between with this
 * instance's own placements; placements under way count until their row is written.
 */
import { RelayFleetError } from "../../../../lib/errors.ts";
import type { SiteRow } from "../../../../lib/ledger/index.ts";
import type { RelayAdmin } from "../relay-admin/types.ts";
import type { RolloutDeps } from "./context.ts";
import type { NamespacePolicy, RelayNamespace } from "./namespace-types.ts";
import { siteSpecSchema } from "./schemas.ts";

/** Azure Relay's default concurrent connections per namespace (the relay FAQ's quota table). */
export const DEFAULT_NAMESPACE_CONNECTIONS = 5_000;
/** The module's control channels per device (RELAY_LISTENER_COUNT's default). */
export const DEFAULT_LISTENER_CHANNELS = 2;
/** Standbys budgeted per site: one gateway's pool ceiling (GATEWAY_STANDBY_MAX's default). */
export const DEFAULT_STANDBY_CONNECTIONS = 16;
export const DEFAULT_MAX_FILL = 0.8;

export interface NamespaceLoad {
  endpoint: string;
  sites: number;
  connections: number;
  /** Connections the namespace allows. */
  quota: number;
  /** The most the rollout places in it (quota × fill limit). */
  limit: number;
}

/** The namespaces the rollout may use: the configured list, else the one `deps.relay`. */
export function namespacesOf(deps: RolloutDeps): RelayNamespace[] {
  return deps.relayNamespaces && deps.relayNamespaces.length > 0
    ? deps.relayNamespaces
    : [{ admin: deps.relay, connections: DEFAULT_NAMESPACE_CONNECTIONS }];
}

export function policyOf(deps: RolloutDeps): NamespacePolicy {
  return {
    listenerChannels: deps.namespacePolicy?.listenerChannels ?? DEFAULT_LISTENER_CHANNELS,
    standbyConnections: deps.namespacePolicy?.standbyConnections ?? DEFAULT_STANDBY_CONNECTIONS,
    maxFill: deps.namespacePolicy?.maxFill ?? DEFAULT_MAX_FILL,
    refreshMs: deps.namespacePolicy?.refreshMs ?? 30_000,
  };
}

const sameEndpoint = (a: string, b: string) =>
  a.replace(/\/+$/, "").toLowerCase() === b.replace(/\/+$/, "").toLowerCase();

/** The admin of the namespace at `endpoint`; a site in a namespace no longer configured is an error. */
export function relayFor(deps: RolloutDeps, endpoint: string): RelayAdmin {
  const ns = namespacesOf(deps).find((n) => sameEndpoint(n.admin.endpoint, endpoint));
  if (ns) return ns.admin;
  throw new RelayFleetError(
    "RF_ERR_ROLLOUT_CONFIG",
    `The relay namespace ${endpoint} is not configured in this rollout (RELAY_NAMESPACES); add it back, or move its sites first.`,
  );
}

/** Connections a site of `devices` devices holds in its namespace. */
export function siteConnections(policy: NamespacePolicy, devices: number): number {
  return Math.max(1, devices) * policy.listenerChannels + policy.standbyConnections;
}

function devicesOfRow(row: SiteRow): number {
  try {
    const parsed = siteSpecSchema.safeParse(JSON.parse(row.spec ?? "null"));
    if (parsed.success) return parsed.data.deviceIds.length;
  } catch {
    // An unreadable spec still has its one device column.
  }
  return 1;
}

type SiteLoad = { endpoint: string; connections: number };

/**
 * What this instance knows of the namespaces' loads: the sites read from the ledger, its own
 * placements under way, and their sums per namespace kept as they change, so placing a site costs
 * the same with ten thousand sites as with ten.
 */
interface Placer {
  ledgerLoad?: { at: number; bySite: Map<string, SiteLoad> };
  /** Placements of this instance whose site row may not be read back yet. */
  pending: Map<string, SiteLoad>;
  /** Per namespace (normalized endpoint): the sites and connections of `ledgerLoad` merged with `pending`. */
  totals: Map<string, { sites: number; connections: number }>;
}

const placers = new WeakMap<RolloutDeps, Placer>();
const keyOf = (endpoint: string) => endpoint.replace(/\/+$/, "").toLowerCase();

function placerOf(deps: RolloutDeps): Placer {
  let p = placers.get(deps);
  if (!p) {
    p = { pending: new Map(), totals: new Map() };
    placers.set(deps, p);
  }
  return p;
}

/** The load a site counts for now: its placement under way, else its ledger row. */
const effective = (p: Placer, siteId: string) => p.pending.get(siteId) ?? p.ledgerLoad?.bySite.get(siteId);

function add(p: Placer, load: SiteLoad | undefined, sign: 1 | -1): void {
  if (!load) return;
  const key = keyOf(load.endpoint);
  const t = p.totals.get(key) ?? { sites: 0, connections: 0 };
  t.sites += sign;
  t.connections += sign * load.connections;
  p.totals.set(key, t);
}

/** Changes what `siteId` counts for with `change`, keeping the totals. */
function update(p: Placer, siteId: string, change: () => void): void {
  add(p, effective(p, siteId), -1);
  change();
  add(p, effective(p, siteId), 1);
}

async function refreshLoads(deps: RolloutDeps, fresh: boolean): Promise<Placer> {
  const placer = placerOf(deps);
  const policy = policyOf(deps);
  if (fresh || !placer.ledgerLoad || Date.now() - placer.ledgerLoad.at > policy.refreshMs) {
    const bySite = new Map<string, SiteLoad>();
    for (const row of await deps.ledger.listSites())
      bySite.set(row.siteId, {
        endpoint: row.relayEndpoint,
        connections: siteConnections(policy, devicesOfRow(row)),
      });
    placer.ledgerLoad = { at: Date.now(), bySite };
    placer.totals = new Map();
    for (const siteId of new Set([...bySite.keys(), ...placer.pending.keys()]))
      add(placer, effective(placer, siteId), 1);
  }
  return placer;
}

/** Each configured namespace's sites and connections (`fresh`: re-read the ledger now). */
export async function namespaceLoads(
  deps: RolloutDeps,
  options: { fresh?: boolean } = {},
): Promise<NamespaceLoad[]> {
  const policy = policyOf(deps);
  const placer = await refreshLoads(deps, options.fresh === true);
  return namespacesOf(deps).map((n) => {
    const t = placer.totals.get(keyOf(n.admin.endpoint));
    return {
      endpoint: n.admin.endpoint,
      sites: t?.sites ?? 0,
      connections: t?.connections ?? 0,
      quota: n.connections,
      limit: Math.floor(n.connections * policy.maxFill),
    };
  });
}

function noRoom(siteId: string, connections: number, loads: NamespaceLoad[]): RelayFleetError {
  const where = loads.map((l) => `${l.endpoint} ${l.connections}/${l.quota}`).join(", ");
  return new RelayFleetError(
    "RF_ERR_ROLLOUT_RELAY_FULL",
    `No relay namespace has room for site ${siteId} (${connections} connections) within its fill limit (${where}); add a namespace (RELAY_NAMESPACES, the infrastructure template's relayNamespaceCount). Nothing was changed.`,
  );
}

/**
 * Reserves room for a new site of `devices` devices in the first namespace where it fits (the
 * reservation lasts until `release`); throws `RF_ERR_ROLLOUT_RELAY_FULL` when none has room.
 */
export async function placeSite(
  deps: RolloutDeps,
  siteId: string,
  devices: number,
  options: { only?: string } = {},
): Promise<{ admin: RelayAdmin; release: (written: boolean) => void }> {
  const policy = policyOf(deps);
  const connections = siteConnections(policy, devices);
  const loads = await namespaceLoads(deps);
  const fits = (l: NamespaceLoad) => l.connections + connections <= l.limit;
  const chosen = loads.find(
    (l) => (options.only === undefined || sameEndpoint(l.endpoint, options.only)) && fits(l),
  );
  if (!chosen) throw noRoom(siteId, connections, loads);
  const placer = placerOf(deps);
  const entry = { endpoint: chosen.endpoint, connections };
  update(placer, siteId, () => placer.pending.set(siteId, entry));
  return {
    admin: relayFor(deps, chosen.endpoint),
    release: (written) => {
      if (placer.pending.get(siteId) !== entry) return;
      update(placer, siteId, () => {
        placer.pending.delete(siteId);
        // A site row written now counts until the next ledger read sees it.
        if (written && placer.ledgerLoad) placer.ledgerLoad.bySite.set(siteId, entry);
      });
    },
  };
}

/** Forgets a site's load (offboarded) until the next ledger read. */
export function forgetSite(deps: RolloutDeps, siteId: string): void {
  const placer = placerOf(deps);
  update(placer, siteId, () => {
    placer.pending.delete(siteId);
    placer.ledgerLoad?.bySite.delete(siteId);
  });
}
