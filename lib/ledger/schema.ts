/**
 * Rows of the port ledger (Azure Table `portledger`), validated with zod on the way in and out.
 * The gateway reads these rows; the rollout service is the only writer. See ADR 0003.
 */
import { z } from "zod";
import { ROUTE_LIMIT_MAX } from "./route-limits.ts";

/** Default table name of the port ledger. */
export const DEFAULT_LEDGER_TABLE = "portledger";
/** PartitionKey of site rows. */
export const SITE_PARTITION = "site";
/** PartitionKey of route rows (one partition: a gateway reads the whole map with one query). */
export const ROUTE_PARTITION = "route";
/**
 * PartitionKey of tombstones: RowKey `<partition>~<rowKey>` of a deleted site or route row, so a
 * gateway that follows the ledger by Timestamp learns of deletions (lib/ledger/follow-ledger.ts).
 */
export const TOMBSTONE_PARTITION = "deleted";
/**
 * PartitionKey of device claims: one row per device (RowKey: the device id in base64url, as device
 * ids may hold characters a RowKey may not) naming the site the device belongs to, so the rollout
 * checks a device with one point read instead of reading every site (device-claims.ts). Gateways
 * read neither this partition nor its deletions.
 */
export const DEVICE_PARTITION = "device";
/**
 * PartitionKey of counters: one row per counter (RowKey its name) handing out fleet-wide ordinals
 * in blocks (ordinals.ts). Gateways read neither this partition nor its changes.
 */
export const COUNTER_PARTITION = "counter";
/** The claims row saying every site's devices have been claimed (a ledger from before claims has none). */
export const DEVICE_CLAIMS_COMPLETE_KEY = "~complete";

/** The RowKey of a device's claim. */
export function deviceClaimKey(deviceId: string): string {
  return Buffer.from(deviceId, "utf8").toString("base64url");
}

/** How long tombstones are kept (the rollout's reconcile prunes older ones). */
export const TOMBSTONE_RETENTION_MS = 24 * 3_600_000;

/** The tombstone RowKey for a deleted ledger row. */
export function tombstoneKey(partitionKey: string, rowKey: string): string {
  return `${partitionKey}~${rowKey}`;
}

export const SITE_ID_PATTERN = /^[a-z0-9][a-z0-9-]{0,39}$/;

export const siteIdSchema = z
  .string()
  .regex(
    SITE_ID_PATTERN,
    "must be 1-40 characters: lowercase letters, digits and '-', not starting with '-'",
  );

/**
 * A site row: what a gateway needs to open a sender connection to the site. With Entra ID (the
 * default) gateways sign in with their managed identity and the row holds no key at all; the
 * Send rule's name and key are there only when the rollout runs with SAS Send rules.
 */
export const siteRowSchema = z.object({
  siteId: siteIdSchema,
  hybridConnection: z.string().min(1),
  relayEndpoint: z.string().min(1),
  sendKeyName: z.string().min(1).optional(),
  sendKey: z.string().min(1).optional(),
  deviceId: z.string().min(1),
  createdAt: z.string().min(1),
  /** Rollout's own fields (the gateway ignores them): site profile and desired spec as JSON. */
  profile: z.string().optional(),
  spec: z.string().optional(),
});
export type SiteRow = z.infer<typeof siteRowSchema>;

export const routeKindSchema = z.enum(["tcp", "shared", "tls-sni", "http-host"]);
export type RouteKind = z.infer<typeof routeKindSchema>;

/** A route row: public port (and host name on a shared port) → site + logical port name. */
export const routeRowSchema = z.object({
  /** `<port>` or `<port>:<hostname>`. */
  rowKey: z.string().min(1),
  kind: routeKindSchema,
  port: z.number().int().min(1).max(65535),
  hostname: z.string().min(1).optional(),
  /** Empty on `shared` rows (the shared port belongs to no site). */
  siteId: z.string(),
  /**
   * The mapping's name (the rollout's key for the route). The column keeps its stored name;
   * it is a mapping name (lib/twin's rule), not a logical port: that is `logicalPort`.
   */
  portName: z.string(),
  /**
   * The logical port name the gateway sends in the preamble, when the mapping names one that
   * differs from its name (azbridge names such as `rdp.main`); absent: `portName`.
   */
  logicalPort: z.string().optional(),
  allowCidrs: z.array(z.string()),
  maxConnections: z.number().int().min(0),
  ratePerMinute: z.number().int().min(0),
  /** Absent: the gateway's default (route-limits.ts); 0 = never. */
  idleTimeoutMs: z.number().int().min(0).max(ROUTE_LIMIT_MAX.idleTimeoutMs).optional(),
  /** Live connections per client address; absent: the gateway's default; 0 = no per-address cap. */
  maxConnectionsPerSource: z.number().int().min(0).max(ROUTE_LIMIT_MAX.maxConnectionsPerSource).optional(),
  /** A client silent this long after connecting is closed; absent: the gateway's default; 0 = never. */
  silentTimeoutMs: z.number().int().min(0).max(ROUTE_LIMIT_MAX.silentTimeoutMs).optional(),
  proxyProtocol: z.boolean(),
});
export type RouteRow = z.infer<typeof routeRowSchema>;

/** Table entity form of a route row (`allowCidrs` is a JSON array string in the table). */
export interface RouteEntity {
  partitionKey: string;
  rowKey: string;
  kind: string;
  port: number;
  hostname?: string;
  siteId: string;
  portName: string;
  logicalPort?: string;
  allowCidrs: string;
  maxConnections: number;
  ratePerMinute: number;
  idleTimeoutMs?: number;
  maxConnectionsPerSource?: number;
  silentTimeoutMs?: number;
  proxyProtocol: boolean;
}

export interface SiteEntity extends Omit<SiteRow, "siteId"> {
  partitionKey: string;
  rowKey: string;
}

/** Converts a route row to its table entity. */
export function routeToEntity(row: RouteRow): RouteEntity {
  const entity: RouteEntity = {
    partitionKey: ROUTE_PARTITION,
    rowKey: row.rowKey,
    kind: row.kind,
    port: row.port,
    siteId: row.siteId,
    portName: row.portName,
    allowCidrs: JSON.stringify(row.allowCidrs),
    maxConnections: row.maxConnections,
    ratePerMinute: row.ratePerMinute,
    proxyProtocol: row.proxyProtocol,
  };
  // Table storage cannot hold "absent" as a value: an unset limit is a missing property.
  if (row.idleTimeoutMs !== undefined) entity.idleTimeoutMs = row.idleTimeoutMs;
  if (row.maxConnectionsPerSource !== undefined) entity.maxConnectionsPerSource = row.maxConnectionsPerSource;
  if (row.silentTimeoutMs !== undefined) entity.silentTimeoutMs = row.silentTimeoutMs;
  if (row.hostname !== undefined) entity.hostname = row.hostname;
  if (row.logicalPort !== undefined) entity.logicalPort = row.logicalPort;
  return entity;
}

function parseCidrs(value: unknown): unknown {
  if (typeof value !== "string" || value === "") return [];
  try {
    return JSON.parse(value);
  } catch {
    return value; // zod then reports "expected array"
  }
}

function optionalLimit(entity: Record<string, unknown>, name: string): Record<string, unknown> {
  const value = entity[name];
  return value === undefined || value === null ? {} : { [name]: value };
}

/** Parses a raw table entity of the route partition; `safeParse` result so readers can skip bad rows. */
export function parseRouteEntity(entity: Record<string, unknown>) {
  return routeRowSchema.safeParse({
    rowKey: entity.rowKey,
    kind: entity.kind,
    port: entity.port,
    hostname: entity.hostname ?? undefined,
    siteId: entity.siteId ?? "",
    portName: entity.portName ?? "",
    allowCidrs: parseCidrs(entity.allowCidrs),
    maxConnections: entity.maxConnections ?? 0,
    ratePerMinute: entity.ratePerMinute ?? 0,
    proxyProtocol: entity.proxyProtocol ?? false,
    // Unset limits stay absent (not `undefined` keys): the gateway then applies its defaults.
    ...optionalLimit(entity, "idleTimeoutMs"),
    ...optionalLimit(entity, "maxConnectionsPerSource"),
    ...optionalLimit(entity, "silentTimeoutMs"),
    ...optionalLimit(entity, "logicalPort"),
  });
}

/** Parses a raw table entity of the site partition. */
export function parseSiteEntity(entity: Record<string, unknown>) {
  return siteRowSchema.safeParse({
    siteId: entity.rowKey,
    hybridConnection: entity.hybridConnection,
    relayEndpoint: entity.relayEndpoint,
    sendKeyName:
      typeof entity.sendKeyName === "string" && entity.sendKeyName !== "" ? entity.sendKeyName : undefined,
    sendKey: typeof entity.sendKey === "string" && entity.sendKey !== "" ? entity.sendKey : undefined,
    deviceId: entity.deviceId,
    createdAt: entity.createdAt,
    profile: typeof entity.profile === "string" ? entity.profile : undefined,
    spec: typeof entity.spec === "string" ? entity.spec : undefined,
  });
}

/** Converts a site row to its table entity. */
export function siteToEntity(row: SiteRow): SiteEntity {
  const { siteId, ...rest } = row;
  const entity: SiteEntity = { partitionKey: SITE_PARTITION, rowKey: siteId, ...rest };
  if (entity.sendKeyName === undefined) delete entity.sendKeyName;
  if (entity.sendKey === undefined) delete entity.sendKey;
  if (entity.profile === undefined) delete entity.profile;
  if (entity.spec === undefined) delete entity.spec;
  return entity;
}

/** RowKey of a host-name route on a shared port. */
export function hostRouteKey(port: number, hostname: string): string {
  return `${port}:${hostname.toLowerCase()}`;
}
