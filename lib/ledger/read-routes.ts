/**
 * Reading the port ledger (ADR 0003) the way a gateway needs it: one query over the `site` and
 * `route` partitions, every row validated on its own. A bad row is reported and skipped, never
 * fatal, so one typo by hand in the table cannot take every other route down.
 *
 * Row layout (team brief, "Port ledger"):
 *   site  / <siteId>            hybridConnection, relayEndpoint, sendKeyName, sendKey, deviceId
 *   route / <port>              kind tcp | shared, siteId + portName for tcp, limits
 *   route / <port>:<hostname>   kind tls-sni | http-host, siteId, portName, limits
 */
import { TableClient } from "@azure/data-tables";
import { z } from "zod";

/** Site ids and mapping names from the shared contract. */
const SITE_ID = /^[a-z0-9][a-z0-9-]{0,39}$/;
const PORT_NAME = /^[A-Za-z0-9_-]{1,64}$/;
/** DNS names as they appear in SNI / Host, lower-cased; `*.` wildcard prefix allowed. */
const HOSTNAME = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** Table storage hands back numbers, but a row typed in by hand may hold "50"; accept both. */
const intField = (min: number, max: number, fallback: number) =>
  z.preprocess(
    (v) => (v === undefined || v === null || v === "" ? fallback : typeof v === "string" ? Number(v) : v),
    z.number().int().min(min).max(max),
  );

const boolField = z.preprocess(
  (v) =>
    v === undefined || v === null || v === "" ? false : v === "true" ? true : v === "false" ? false : v,
  z.boolean(),
);

const cidrsField = z.preprocess(
  (v) => {
    if (v === undefined || v === null || v === "") return [];
    if (typeof v !== "string") return v;
    try {
      return JSON.parse(v);
    } catch {
      return v;
    }
  },
  z.array(z.string().min(1).max(64)).max(256),
);

const siteRow = z.object({
  rowKey: z.string().regex(SITE_ID, "site id must match ^[a-z0-9][a-z0-9-]{0,39}$"),
  hybridConnection: z.string().min(1).max(260),
  relayEndpoint: z.string().min(1).max(300),
  sendKeyName: z.string().min(1).max(256),
  sendKey: z.string().min(1).max(256),
  deviceId: z.string().optional(),
});

const routeRow = z.object({
  rowKey: z.string().regex(/^\d{1,5}(:[^:]+)?$/, "route key must be <port> or <port>:<hostname>"),
  kind: z.enum(["tcp", "shared", "tls-sni", "http-host"]),
  port: intField(1, 65535, -1),
  hostname: z.string().optional(),
  siteId: z.string().optional(),
  portName: z.string().optional(),
  allowCidrs: cidrsField,
  maxConnections: intField(0, 1_000_000, 0),
  ratePerMinute: intField(0, 1_000_000, 0),
  idleTimeoutMs: intField(0, 7 * 24 * 3600 * 1000, 0),
  proxyProtocol: boolField,
});

/** A site's Send-only credentials, as the gateway uses them. */
export interface LedgerSite {
  siteId: string;
  hybridConnection: string;
  relayEndpoint: string;
  sendKeyName: string;
  sendKey: string;
}

/** One route row after validation (hostnames lower-cased). */
export interface LedgerRoute {
  /** The RowKey: `<port>` or `<port>:<hostname>`; also the metrics label. */
  key: string;
  kind: "tcp" | "shared" | "tls-sni" | "http-host";
  port: number;
  hostname?: string;
  siteId?: string;
  portName?: string;
  allowCidrs: string[];
  maxConnections: number;
  ratePerMinute: number;
  idleTimeoutMs: number;
  proxyProtocol: boolean;
}

/** A row that was skipped, and why. */
export interface LedgerProblem {
  partitionKey: string;
  rowKey: string;
  message: string;
}

export interface LedgerSnapshot {
  sites: Map<string, LedgerSite>;
  routes: LedgerRoute[];
  problems: LedgerProblem[];
}

function describe(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join(".") || "row"}: ${i.message}`).join("; ");
}

/** Validates one site row; returns the site or a problem. Pure (tests feed it plain objects). */
export function parseSiteRow(row: Record<string, unknown>): LedgerSite | LedgerProblem {
  const rowKey = String(row.rowKey ?? "");
  const parsed = siteRow.safeParse(row);
  if (!parsed.success) return { partitionKey: "site", rowKey, message: describe(parsed.error) };
  const { deviceId: _deviceId, rowKey: siteId, ...rest } = parsed.data;
  return { siteId, ...rest };
}

/** Validates one route row, including that RowKey, `port`, `kind` and `hostname` agree. */
export function parseRouteRow(row: Record<string, unknown>): LedgerRoute | LedgerProblem {
  const rowKey = String(row.rowKey ?? "");
  const problem = (message: string): LedgerProblem => ({ partitionKey: "route", rowKey, message });
  const parsed = routeRow.safeParse(row);
  if (!parsed.success) return problem(describe(parsed.error));
  const r = parsed.data;
  const [portText, keyHost] = r.rowKey.split(/:(.*)/s, 2) as [string, string | undefined];
  const port = r.port === -1 ? Number(portText) : r.port;
  if (port !== Number(portText)) return problem(`port ${r.port} does not match RowKey ${r.rowKey}`);
  if (port < 1 || port > 65535) return problem(`port ${port} is out of range`);
  const hostname = (r.hostname ?? keyHost)?.toLowerCase();
  const named = r.kind === "tls-sni" || r.kind === "http-host";
  if (named) {
    if (!keyHost || !hostname) return problem(`a ${r.kind} route needs a RowKey <port>:<hostname>`);
    if (hostname !== keyHost.toLowerCase()) return problem(`hostname ${hostname} does not match RowKey`);
    if (!HOSTNAME.test(hostname) || hostname.length > 253) return problem(`'${hostname}' is not a host name`);
  } else if (keyHost) {
    return problem(`a ${r.kind} route must have RowKey <port>, not <port>:<hostname>`);
  }
  if (r.kind !== "shared") {
    if (!r.siteId || !SITE_ID.test(r.siteId)) return problem("siteId is missing or not a site id");
    if (!r.portName || !PORT_NAME.test(r.portName))
      return problem("portName is missing or not a mapping name");
  }
  const route: LedgerRoute = {
    key: r.rowKey.toLowerCase(),
    kind: r.kind,
    port,
    allowCidrs: r.allowCidrs,
    maxConnections: r.maxConnections,
    ratePerMinute: r.ratePerMinute,
    idleTimeoutMs: r.idleTimeoutMs,
    proxyProtocol: r.proxyProtocol,
  };
  if (named) route.hostname = hostname;
  if (r.kind !== "shared") {
    route.siteId = r.siteId;
    route.portName = r.portName;
  }
  return route;
}

/** Splits raw entities (any order, any partition) into sites, routes and problems. Pure. */
export function parseLedgerRows(rows: Iterable<Record<string, unknown>>): LedgerSnapshot {
  const snapshot: LedgerSnapshot = { sites: new Map(), routes: [], problems: [] };
  for (const row of rows) {
    if (row.partitionKey === "site") {
      const site = parseSiteRow(row);
      if ("message" in site) snapshot.problems.push(site);
      else snapshot.sites.set(site.siteId, site);
    } else if (row.partitionKey === "route") {
      const route = parseRouteRow(row);
      if ("message" in route) snapshot.problems.push(route);
      else snapshot.routes.push(route);
    }
  }
  return snapshot;
}

/** Opens the ledger table; plain-http endpoints (Azurite) need the SDK's insecure flag. */
export function ledgerTableClient(connectionString: string, table = "portledger"): TableClient {
  const insecure = /UseDevelopmentStorage=true|=http:\/\//i.test(connectionString);
  return TableClient.fromConnectionString(connectionString, table, { allowInsecureConnection: insecure });
}

/**
 * Reads the whole ledger with one paged query over both partitions. Network or auth failures
 * throw (the caller keeps its last good table); row-level problems come back in `problems`.
 */
export async function readLedger(client: TableClient): Promise<LedgerSnapshot> {
  const rows: Record<string, unknown>[] = [];
  const iterator = client.listEntities<Record<string, unknown>>({
    queryOptions: { filter: "PartitionKey eq 'site' or PartitionKey eq 'route'" },
  });
  for await (const entity of iterator) rows.push(entity);
  return parseLedgerRows(rows);
}
