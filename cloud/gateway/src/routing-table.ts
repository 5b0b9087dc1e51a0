/**
 * The gateway's routing table: ledger rows joined with their sites and grouped by public port,
 * and the pure diff between two tables that hot reload applies (open / close / update ports).
 * Built once per reload; connections look up the current table when they arrive, so an update
 * applies to new connections while live ones keep the route they started with.
 */
import type {
  LedgerProblem,
  LedgerRoute,
  LedgerSite,
  LedgerSnapshot,
} from "../../../lib/ledger/read-routes.ts";
import { ROUTE_LIMIT_DEFAULTS } from "../../../lib/ledger/route-limits.ts";
import { type Allowlist, compileAllowlist } from "./allowlist.ts";

/** The limits a connection on a route gets: the row's own, else the gateway's defaults. 0 = off. */
export interface RouteLimits {
  maxConnectionsPerSource: number;
  silentTimeoutMs: number;
  idleTimeoutMs: number;
}

/** A route a connection can be sent down: its row, its site's Send credentials, its allowlist. */
export interface Route extends LedgerRoute {
  siteId: string;
  portName: string;
  site: LedgerSite;
  allowlist: Allowlist;
  limits: RouteLimits;
}

/** A dedicated port carries one route; a shared port picks a route by SNI or Host name. */
export type PortSpec =
  | { port: number; kind: "tcp"; route: Route; fingerprint: string }
  | {
      port: number;
      kind: "shared";
      /** Allowlist of the shared port's own row, checked before a byte is read. */
      allowlist: Allowlist;
      /** TLS names (SNI) and plain-HTTP names (Host) are looked up separately. */
      tls: Map<string, Route>;
      http: Map<string, Route>;
      fingerprint: string;
    };

export interface RoutingTable {
  ports: Map<number, PortSpec>;
  /** Ledger rows skipped here or by the reader, with the reason. */
  problems: LedgerProblem[];
  routeCount: number;
  loadedAt: number;
}

/** An empty table (before the first successful load). */
export function emptyTable(): RoutingTable {
  return { ports: new Map(), problems: [], routeCount: 0, loadedAt: 0 };
}

/** Everything that changes how a new connection is served, secrets included (never logged). */
function fingerprintRoute(r: Route): string {
  const { allowlist: _a, site, ...rest } = r;
  return JSON.stringify([rest, site]);
}

/**
 * Joins routes with sites and groups them per port. Rows that cannot be served (unknown site,
 * bad CIDR, a host name on a dedicated port, the same name twice) are skipped with a problem.
 */
export function buildRoutingTable(
  snapshot: LedgerSnapshot,
  now = Date.now(),
  defaults: RouteLimits = ROUTE_LIMIT_DEFAULTS,
): RoutingTable {
  const problems = [...snapshot.problems];
  const skip = (r: LedgerRoute, message: string) =>
    problems.push({ partitionKey: "route", rowKey: r.key, message });
  const ports = new Map<number, PortSpec>();
  const named: Route[] = [];
  let routeCount = 0;
  // Dedicated and shared port rows first, so named routes can see what their port is.
  const ordered = [...snapshot.routes].sort(
    (a, b) => Number(a.hostname !== undefined) - Number(b.hostname !== undefined),
  );
  for (const row of ordered) {
    let allowlist: Allowlist;
    try {
      allowlist = compileAllowlist(row.allowCidrs);
    } catch (err) {
      skip(row, (err as Error).message);
      continue;
    }
    if (row.kind === "shared") {
      ports.set(row.port, {
        port: row.port,
        kind: "shared",
        allowlist,
        tls: new Map(),
        http: new Map(),
        fingerprint: "",
      });
      continue;
    }
    const site = snapshot.sites.get(row.siteId ?? "");
    if (!site) {
      skip(row, `site '${row.siteId}' has no (valid) site row`);
      continue;
    }
    const limits: RouteLimits = {
      maxConnectionsPerSource: row.maxConnectionsPerSource ?? defaults.maxConnectionsPerSource,
      silentTimeoutMs: row.silentTimeoutMs ?? defaults.silentTimeoutMs,
      idleTimeoutMs: row.idleTimeoutMs ?? defaults.idleTimeoutMs,
    };
    const route: Route = { ...row, siteId: row.siteId!, portName: row.portName!, site, allowlist, limits };
    if (row.kind === "tcp") {
      ports.set(row.port, { port: row.port, kind: "tcp", route, fingerprint: fingerprintRoute(route) });
      routeCount++;
    } else named.push(route);
  }
  for (const route of named) {
    let spec = ports.get(route.port);
    // A name route without its shared row still works: the port is shared by implication.
    if (!spec) {
      spec = {
        port: route.port,
        kind: "shared",
        allowlist: compileAllowlist([]),
        tls: new Map(),
        http: new Map(),
        fingerprint: "",
      };
      ports.set(route.port, spec);
    }
    if (spec.kind !== "shared") {
      skip(route, `port ${route.port} is a dedicated tcp port; a name route cannot share it`);
      continue;
    }
    const names = route.kind === "tls-sni" ? spec.tls : spec.http;
    if (names.has(route.hostname!)) {
      skip(route, `${route.hostname} is already routed on port ${route.port}`);
      continue;
    }
    names.set(route.hostname!, route);
    routeCount++;
  }
  for (const spec of ports.values()) {
    if (spec.kind !== "shared") continue;
    const list = (m: Map<string, Route>) =>
      [...m.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, r]) => fingerprintRoute(r));
    spec.fingerprint = JSON.stringify([spec.allowlist.size, list(spec.tls), list(spec.http)]);
  }
  for (const row of snapshot.routes)
    if (row.kind === "shared") {
      const spec = ports.get(row.port);
      if (spec?.kind === "shared") spec.fingerprint = JSON.stringify([row.allowCidrs, spec.fingerprint]);
    }
  return { ports, problems, routeCount, loadedAt: now };
}

/** Looks a name up: exact match first, then a `*.parent` wildcard covering one label. */
export function lookupName(names: Map<string, Route>, hostname: string): Route | undefined {
  const exact = names.get(hostname);
  if (exact) return exact;
  const dot = hostname.indexOf(".");
  return dot > 0 ? names.get(`*${hostname.slice(dot)}`) : undefined;
}

/** What a reload must do: ports to start listening on, to stop listening on, and to re-route. */
export interface RouteDiff {
  open: number[];
  close: number[];
  update: number[];
}

/** Pure diff of two tables by port. A changed route, site or allowlist is an `update`. */
export function diffRoutes(previous: RoutingTable, next: RoutingTable): RouteDiff {
  const diff: RouteDiff = { open: [], close: [], update: [] };
  for (const [port, spec] of next.ports) {
    const old = previous.ports.get(port);
    if (!old) diff.open.push(port);
    else if (old.kind !== spec.kind || old.fingerprint !== spec.fingerprint) diff.update.push(port);
  }
  for (const port of previous.ports.keys()) if (!next.ports.has(port)) diff.close.push(port);
  const asc = (a: number, b: number) => a - b;
  diff.open.sort(asc);
  diff.close.sort(asc);
  diff.update.sort(asc);
  return diff;
}
