/**
 * The port ledger's interface (ADR 0003): what the rollout asks of it (sites, routes, allocating
 * and releasing public endpoints) and the shapes it takes. ledger.ts implements it on Table storage.
 */
import type { TableClient } from "@azure/data-tables";
import type { DeviceClaims } from "./device-claims.ts";
import type { OrdinalCounters } from "./ordinals.ts";
import type { RouteRow, SiteRow } from "./schema.ts";

/** Per-route limits stored with the route for the gateway to enforce. */
export interface RouteOptions {
  allowCidrs?: string[];
  maxConnections?: number;
  ratePerMinute?: number;
  /** Unset: the gateway's default (route-limits.ts). */
  idleTimeoutMs?: number;
  maxConnectionsPerSource?: number;
  silentTimeoutMs?: number;
  proxyProtocol?: boolean;
  /** The logical port name the gateway sends, when it is not the mapping's name (`portName`). */
  logicalPort?: string;
}

/** Where a mapping is published: its own TCP port (from the ranges, or a given one) or a host name on a shared port. */
export type PublicEndpoint =
  | { kind: "tcp"; port?: number }
  | { kind: "tls-sni" | "http-host"; port: number; hostname: string };

export interface AllocateRequest {
  siteId: string;
  portName: string;
  endpoint: PublicEndpoint;
  options?: RouteOptions;
}

/** Sites, routes, device claims (device-claims.ts) and fleet-wide ordinals (ordinals.ts). */
export interface PortLedger extends DeviceClaims, OrdinalCounters {
  readonly table: string;
  readonly client: TableClient;
  /** Creates the table if it does not exist. */
  ensureTable(): Promise<void>;
  getSite(siteId: string): Promise<SiteRow | undefined>;
  /** Inserts or replaces a site row. */
  putSite(row: SiteRow): Promise<void>;
  /** Deletes a site row (after its tombstone); absent is fine. */
  deleteSite(siteId: string): Promise<void>;
  /** Deletes tombstones written before `olderThan`; answers how many. */
  pruneTombstones(olderThan: Date): Promise<number>;
  listSites(): Promise<SiteRow[]>;
  /** Every valid route row, or only a site's (rows that fail validation are skipped). */
  listRoutes(filter?: { siteId?: string }): Promise<RouteRow[]>;
  /** Allocates a public endpoint for a mapping; throws 409 errors when a named port or host is taken. */
  allocate(request: AllocateRequest): Promise<RouteRow>;
  /**
   * Read-only: throws the error `allocate` would throw for a named port or host name that is out
   * of range or taken, so a change can be refused before anything is written. (A free port can
   * still be taken by a concurrent writer before `allocate`; callers roll back then.)
   */
  checkAllocate(request: AllocateRequest): Promise<void>;
  /** Rewrites the limits of an existing route (its key, site and port name stay). */
  updateRoute(row: RouteRow): Promise<void>;
  /** Releases a route by RowKey; absent is fine. Removes a shared port row once no host route uses it. */
  release(rowKey: string): Promise<void>;
}
