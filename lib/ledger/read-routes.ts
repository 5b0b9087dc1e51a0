/**
 * Reading the port ledger (ADR 0003) the way a gateway needs it: one query over the `site` and
 * `route` partitions, every row validated on its own. A bad row is reported and skipped, never
 * fatal, so one typo by hand in the table cannot take every other route down.
 *
 * Row layout (lib/ledger/schema.ts validates each kind):
 *   site  / <siteId>            hybridConnection, relayEndpoint, deviceId [, sendKeyName, sendKey: SAS mode only]
 *   route / <port>              kind tcp | shared, siteId + portName for tcp, limits
 *   route / <port>:<hostname>   kind tls-sni | http-host, siteId, portName, limits
 */
import { odata, type TableClient } from "@azure/data-tables";
import type { z } from "zod";
import { isMappingName, LOGICAL_PORT_NAME_PATTERN } from "../twin/schema.ts";
import { ALLOW_ENTRY_RULE, isAllowEntry } from "./cidr.ts";
import {
  parseRouteEntity,
  parseSiteEntity,
  ROUTE_PARTITION,
  SITE_ID_PATTERN,
  SITE_PARTITION,
} from "./schema.ts";
import { statusOf } from "./table.ts";

/** DNS names as they appear in SNI / Host, lower-cased; a `*.` wildcard prefix is allowed. */
const HOSTNAME = /^(\*\.)?([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

/** Where a gateway reaches a site; the Send rule only when the relay is used with SAS. */
export interface LedgerSite {
  siteId: string;
  hybridConnection: string;
  relayEndpoint: string;
  sendKeyName?: string;
  sendKey?: string;
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
  /** The logical port name to send when it differs from `portName` (an azbridge name). */
  logicalPort?: string;
  allowCidrs: string[];
  maxConnections: number;
  ratePerMinute: number;
  /** Unset: the gateway's defaults (route-limits.ts). */
  idleTimeoutMs?: number;
  maxConnectionsPerSource?: number;
  silentTimeoutMs?: number;
  proxyProtocol: boolean;
}

/** A row that was skipped, and why. */
export interface LedgerProblem {
  partitionKey: string;
  rowKey: string;
  message: string;
  /** The site a bad route row names, when it names one (so `status` can show it as drift). */
  siteId?: string;
}

export interface LedgerSnapshot {
  sites: Map<string, LedgerSite>;
  routes: LedgerRoute[];
  problems: LedgerProblem[];
}

function describe(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join(".") || "row"}: ${i.message}`).join("; ");
}

/** Validates one site row (the rollout's schema); returns the site or a problem. Pure. */
export function parseSiteRow(row: Record<string, unknown>): LedgerSite | LedgerProblem {
  const rowKey = String(row.rowKey ?? "");
  const parsed = parseSiteEntity(row);
  if (!parsed.success) return { partitionKey: SITE_PARTITION, rowKey, message: describe(parsed.error) };
  const { siteId, hybridConnection, relayEndpoint, sendKeyName, sendKey } = parsed.data;
  const site: LedgerSite = { siteId, hybridConnection, relayEndpoint };
  if (sendKeyName !== undefined && sendKey !== undefined) {
    site.sendKeyName = sendKeyName;
    site.sendKey = sendKey;
  }
  return site;
}

/**
 * Validates one route row with the rollout's schema, then what a gateway relies on beyond it:
 * RowKey, `port`, `kind` and `hostname` agree, names are DNS names, site and port names are
 * well-formed. Pure.
 */
export function parseRouteRow(row: Record<string, unknown>): LedgerRoute | LedgerProblem {
  const rowKey = String(row.rowKey ?? "");
  const siteId = typeof row.siteId === "string" && row.siteId !== "" ? row.siteId : undefined;
  const problem = (message: string): LedgerProblem => ({
    partitionKey: ROUTE_PARTITION,
    rowKey,
    message,
    ...(siteId ? { siteId } : {}),
  });
  const parsed = parseRouteEntity(row);
  if (!parsed.success) return problem(describe(parsed.error));
  const r = parsed.data;
  const m = /^(\d{1,5})(?::(.+))?$/.exec(r.rowKey);
  if (!m) return problem("RowKey must be <port> or <port>:<hostname>");
  const keyHost = m[2]?.toLowerCase();
  if (r.port !== Number(m[1])) return problem(`port ${r.port} does not match RowKey ${r.rowKey}`);
  const hostname = (r.hostname ?? keyHost)?.toLowerCase();
  const named = r.kind === "tls-sni" || r.kind === "http-host";
  if (named) {
    if (!keyHost || !hostname) return problem(`a ${r.kind} route needs a RowKey <port>:<hostname>`);
    if (hostname !== keyHost) return problem(`hostname ${hostname} does not match RowKey`);
    if (!HOSTNAME.test(hostname) || hostname.length > 253) return problem(`'${hostname}' is not a host name`);
  } else if (keyHost) {
    return problem(`a ${r.kind} route must have RowKey <port>, not <port>:<hostname>`);
  }
  if (r.kind !== "shared") {
    if (!SITE_ID_PATTERN.test(r.siteId)) return problem("siteId is missing or not a site id");
    // The one mapping-name rule (lib/twin), reserved names included: a bare pattern let a row
    // name a mapping "constructor", which neither the rollout nor the module accepts.
    if (!isMappingName(r.portName)) return problem("portName is missing or not a mapping name");
    if (r.logicalPort !== undefined && !LOGICAL_PORT_NAME_PATTERN.test(r.logicalPort))
      return problem("logicalPort is not a logical port name (A-Z a-z 0-9 / _ - ., 1-255)");
  }
  const badCidr = r.allowCidrs.find((c) => !isAllowEntry(c));
  if (badCidr !== undefined) return problem(`allowCidrs: '${badCidr}' ${ALLOW_ENTRY_RULE}`);
  const route: LedgerRoute = {
    key: r.rowKey.toLowerCase(),
    kind: r.kind,
    port: r.port,
    allowCidrs: r.allowCidrs,
    maxConnections: r.maxConnections,
    ratePerMinute: r.ratePerMinute,
    proxyProtocol: r.proxyProtocol,
  };
  if (r.idleTimeoutMs !== undefined) route.idleTimeoutMs = r.idleTimeoutMs;
  if (r.maxConnectionsPerSource !== undefined) route.maxConnectionsPerSource = r.maxConnectionsPerSource;
  if (r.silentTimeoutMs !== undefined) route.silentTimeoutMs = r.silentTimeoutMs;
  if (named) route.hostname = hostname;
  if (r.kind !== "shared") {
    route.siteId = r.siteId;
    route.portName = r.portName;
    if (r.logicalPort !== undefined) route.logicalPort = r.logicalPort;
  }
  return route;
}

/** Splits raw entities (any order, any partition) into sites, routes and problems. Pure. */
export function parseLedgerRows(rows: Iterable<Record<string, unknown>>): LedgerSnapshot {
  const snapshot: LedgerSnapshot = { sites: new Map(), routes: [], problems: [] };
  for (const row of rows) {
    if (row.partitionKey === SITE_PARTITION) {
      const site = parseSiteRow(row);
      if ("message" in site) snapshot.problems.push(site);
      else snapshot.sites.set(site.siteId, site);
    } else if (row.partitionKey === ROUTE_PARTITION) {
      const route = parseRouteRow(row);
      if ("message" in route) snapshot.problems.push(route);
      else snapshot.routes.push(route);
    }
  }
  return snapshot;
}

/**
 * Reads the whole ledger with one paged query over both partitions. Network or auth failures
 * throw (the caller keeps its last good table); row-level problems come back in `problems`.
 */
export async function readLedger(client: TableClient): Promise<LedgerSnapshot> {
  const rows: Record<string, unknown>[] = [];
  const iterator = client.listEntities<Record<string, unknown>>({
    queryOptions: { filter: odata`PartitionKey eq ${SITE_PARTITION} or PartitionKey eq ${ROUTE_PARTITION}` },
  });
  try {
    for await (const entity of iterator) rows.push(entity);
  } catch (err) {
    // No table yet (a fresh environment, before the rollout's first write) is an empty ledger.
    if (statusOf(err) === 404) return parseLedgerRows([]);
    throw err;
  }
  return parseLedgerRows(rows);
}
