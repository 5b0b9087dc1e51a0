/**
 * Gateway status rows: each gateway instance reports what it could not do — public ports it
 * cannot bind — to its own row of a table next to the port ledger (`gatewaystatus` by default),
 * and the rollout's `status` reads them. A separate table, not the ledger: the ledger keeps one
 * writer (the rollout, ADR 0003), and a gateway needs write access only to its status rows.
 * The row contract lives here, used by both sides.
 */
import { odata, type TableClient } from "@azure/data-tables";
import { z } from "zod";
import { statusOf } from "./table.ts";

export const DEFAULT_GATEWAY_STATUS_TABLE = "gatewaystatus";
export const GATEWAY_STATUS_PARTITION = "gateway";

/** A public port the gateway has in its routing table but cannot listen on. */
export const unboundPortSchema = z.object({
  port: z.number().int().min(1).max(65535),
  /** The bind error, e.g. `listen EADDRINUSE: address already in use 0.0.0.0:21005`. */
  error: z.string(),
  /** When the first failed bind of this run was (ISO time). */
  since: z.string(),
  attempts: z.number().int().min(1),
});
export type UnboundPort = z.infer<typeof unboundPortSchema>;

export const gatewayStatusSchema = z.object({
  instanceId: z.string().min(1).max(256),
  /** When the gateway wrote this row (ISO time). */
  updatedAt: z.string(),
  /** The gateway rewrites its row at least this often while it runs. */
  heartbeatMs: z.number().int().min(1),
  ready: z.boolean(),
  listening: z.number().int().min(0),
  unbound: z.array(unboundPortSchema),
});
export type GatewayStatus = z.infer<typeof gatewayStatusSchema>;

/** Table entity of a status row (`unbound` is a JSON string in the table). */
export function gatewayStatusToEntity(s: GatewayStatus): {
  partitionKey: string;
  rowKey: string;
  [field: string]: unknown;
} {
  return {
    partitionKey: GATEWAY_STATUS_PARTITION,
    rowKey: s.instanceId,
    updatedAt: s.updatedAt,
    heartbeatMs: s.heartbeatMs,
    ready: s.ready,
    listening: s.listening,
    unbound: JSON.stringify(s.unbound),
  };
}

/** Parses a status entity; `undefined` for a row that is not one (a hand edit, another version). */
export function parseGatewayStatusEntity(entity: Record<string, unknown>): GatewayStatus | undefined {
  let unbound: unknown;
  try {
    unbound = typeof entity.unbound === "string" ? JSON.parse(entity.unbound) : [];
  } catch {
    return undefined;
  }
  const parsed = gatewayStatusSchema.safeParse({
    instanceId: entity.rowKey,
    updatedAt: entity.updatedAt,
    heartbeatMs: entity.heartbeatMs,
    ready: entity.ready,
    listening: entity.listening,
    unbound,
  });
  return parsed.success ? parsed.data : undefined;
}

/** Every status row of the table; a missing table is no gateway reporting yet. */
export async function readGatewayStatuses(client: TableClient): Promise<GatewayStatus[]> {
  const out: GatewayStatus[] = [];
  try {
    const rows = client.listEntities<Record<string, unknown>>({
      queryOptions: { filter: odata`PartitionKey eq ${GATEWAY_STATUS_PARTITION}` },
    });
    for await (const row of rows) {
      const status = parseGatewayStatusEntity(row);
      if (status) out.push(status);
    }
  } catch (err) {
    if (statusOf(err) === 404) return [];
    throw err;
  }
  return out.sort((a, b) => a.instanceId.localeCompare(b.instanceId));
}

/** A row older than three heartbeats belongs to a gateway that stopped without saying so. */
export function isStale(s: GatewayStatus, now = Date.now()): boolean {
  return now - Date.parse(s.updatedAt) > 3 * s.heartbeatMs;
}
