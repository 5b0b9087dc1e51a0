/**
 * The audit record of one tunnel, the same shape from both ends: the gateway logs it as a JSON
 * line (pino, `event: "audit"`), the module sends it upstream as IoT Hub telemetry (batched,
 * see modules/relayListener/src/audit-sender.ts). Nothing secret goes in: no keys, no payload,
 * only addresses, names, counts and times.
 */
import { z } from "zod";
import type { PumpResult } from "../hyco/pump.ts";

export const AUDIT_END = ["completed", "refused", "reset", "idle_timeout"] as const;
export type AuditEnd = (typeof AUDIT_END)[number];

export const auditRecordSchema = z.object({
  /** Which end wrote it. */
  side: z.enum(["gateway", "module"]),
  /** When the tunnel ended (ISO). */
  time: z.string(),
  startedAt: z.string(),
  site: z.string().optional(),
  device: z.string().optional(),
  mapping: z.string(),
  /** The client as this end saw it: the gateway's TCP peer, or the PROXY v2 source at the module. */
  client: z.string().optional(),
  /** Gateway: the public port (and host name) the client used. */
  publicPort: z.number().int().optional(),
  publicHost: z.string().optional(),
  /** Module: the on-prem target. */
  target: z.string().optional(),
  /** Bytes from the client towards the target, and back. */
  bytesIn: z.number().int().nonnegative(),
  bytesOut: z.number().int().nonnegative(),
  durationMs: z.number().int().nonnegative(),
  end: z.enum(AUDIT_END),
  /** Why it was refused or reset. */
  reason: z.string().max(200).optional(),
});
export type AuditRecord = z.infer<typeof auditRecordSchema>;

/** The batch a module sends as one device-to-cloud message (output `audit`). */
export const auditBatchSchema = z.object({
  type: z.literal("relay-fleet.audit"),
  v: z.literal(1),
  records: z.array(auditRecordSchema).max(1000),
  /** Records dropped since the last batch because the queue was full. */
  dropped: z.number().int().nonnegative(),
});
export type AuditBatch = z.infer<typeof auditBatchSchema>;

/** The message property IoT Hub routes on (`relayFleetType = 'audit'`). */
export const AUDIT_MESSAGE_TYPE = "audit";

/** How a pumped tunnel ended, in audit terms. */
export function endOfPump(result: PumpResult): { end: AuditEnd; reason?: string } {
  if (result.endedBy === "completed") return { end: "completed" };
  if (result.endedBy === "idle-timeout") return { end: "idle_timeout" };
  const reason = result.error ? `${result.endedBy}: ${result.error}` : result.endedBy;
  return { end: "reset", reason: reason.slice(0, 200) };
}

/** `host:port` with IPv6 in brackets; undefined when the address is unknown. */
export function endpoint(address: string | undefined, port: number | undefined): string | undefined {
  if (!address) return undefined;
  const host = address.includes(":") ? `[${address}]` : address;
  return port === undefined ? host : `${host}:${port}`;
}
