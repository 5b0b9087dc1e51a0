/**
 * Audit records out of the two places they are written, as pure functions:
 * - module batches in IoT Hub's routed-message JSON (`{EnqueuedTimeUtc, Properties,
 *   SystemProperties, Body}`), the shape routing writes to storage and the IoT Hub emulator's
 *   kept-messages route answers with;
 * - gateway log lines (pino JSON, `{"event":"audit","audit":{…}}`).
 * Anything that does not parse is counted as skipped, never thrown: one bad message must not hide
 * the rest of the trail.
 */
import { z } from "zod";
import { type AuditRecord, auditBatchSchema, auditRecordSchema } from "../../../../lib/audit/index.ts";

export interface ParsedAudit {
  records: AuditRecord[];
  /** Records a module reported dropping (its queue was full). */
  dropped: number;
  /** Messages or lines that were audit-like but did not parse. */
  skipped: number;
}

const routedMessageSchema = z.looseObject({
  EnqueuedTimeUtc: z.string().optional(),
  Properties: z.record(z.string(), z.unknown()).optional(),
  SystemProperties: z.record(z.string(), z.unknown()).optional(),
  Body: z.unknown(),
});

/** The JSON value of a routed message's body: routing writes base64 unless it was JSON + UTF-8. */
function bodyValue(body: unknown): unknown {
  if (typeof body !== "string") return body;
  try {
    return JSON.parse(Buffer.from(body, "base64").toString("utf8"));
  } catch {
    return undefined;
  }
}

/** Module records from routed messages; messages other than audit batches are ignored. */
export function auditFromRoutedMessages(messages: unknown[]): ParsedAudit {
  const out: ParsedAudit = { records: [], dropped: 0, skipped: 0 };
  for (const raw of messages) {
    const message = routedMessageSchema.safeParse(raw);
    if (!message.success) {
      out.skipped++;
      continue;
    }
    const type = message.data.Properties?.relayFleetType;
    if (type !== undefined && type !== "audit") continue;
    const batch = auditBatchSchema.safeParse(bodyValue(message.data.Body));
    if (!batch.success) {
      if (type === "audit") out.skipped++;
      continue;
    }
    const device = message.data.SystemProperties?.connectionDeviceId;
    // The hub's connection identity is the authority on which device sent it.
    for (const record of batch.data.records)
      out.records.push(typeof device === "string" ? { ...record, device } : record);
    out.dropped += batch.data.dropped;
  }
  return out;
}

const gatewayLineSchema = z.looseObject({ event: z.literal("audit"), audit: auditRecordSchema });

/** Gateway records from its log text (one JSON object a line; other lines are ignored). */
export function auditFromGatewayLog(text: string): ParsedAudit {
  const out: ParsedAudit = { records: [], dropped: 0, skipped: 0 };
  for (const line of text.split("\n")) {
    // Cheap pre-check: most lines are not audit lines.
    if (!line.includes('"audit"')) continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      continue;
    }
    if ((value as { event?: unknown } | null)?.event !== "audit") continue;
    const parsed = gatewayLineSchema.safeParse(value);
    if (parsed.success) out.records.push(parsed.data.audit);
    else out.skipped++;
  }
  return out;
}

export interface AuditSelection {
  site?: string | undefined;
  since?: Date | undefined;
  limit: number;
}

/** The records of `site` that ended at or after `since`, newest first, at most `limit`. */
export function selectAudit(records: AuditRecord[], selection: AuditSelection): AuditRecord[] {
  const since = selection.since?.getTime();
  const keep = records.filter((r) => {
    if (selection.site !== undefined && r.site !== selection.site) return false;
    if (since === undefined) return true;
    const t = Date.parse(r.time);
    return !Number.isNaN(t) && t >= since;
  });
  keep.sort((a, b) => (a.time < b.time ? 1 : a.time > b.time ? -1 : a.side.localeCompare(b.side)));
  return keep.slice(0, selection.limit);
}
