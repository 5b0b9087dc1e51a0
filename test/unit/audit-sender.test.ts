/** Tunnel audit batches: bounded queue, one message per interval, retried, nothing lost silently. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { type AuditRecord, auditBatchSchema, endOfPump } from "../../lib/audit/index.ts";
import { createLogger } from "../../lib/log.ts";
import { AuditSender } from "../../modules/relayListener/src/audit-sender.ts";
import { sleep } from "../helpers/index.ts";

const record = (i: number): AuditRecord => ({
  side: "module",
  time: new Date().toISOString(),
  startedAt: new Date().toISOString(),
  mapping: `m${i}`,
  bytesIn: i,
  bytesOut: 0,
  durationMs: 1,
  end: "completed",
});
const logger = createLogger("test", { level: "silent" });

test("a flood of tunnels becomes few bounded messages; the overflow is counted, not hidden", async () => {
  const sent: Array<{ body: string; properties: Record<string, string> }> = [];
  const sender = new AuditSender({ intervalMs: 50, maxBatch: 100, maxQueue: 250, logger });
  sender.attach(async (body, properties) => {
    sent.push({ body, properties });
  });
  for (let i = 0; i < 1000; i++) sender.add(record(i));
  assert.equal(sender.pending, 250, "the queue is bounded");
  await sleep(400);
  assert.ok(sent.length >= 3 && sent.length <= 8, `${sent.length} messages`);
  const batches = sent.map((m) => auditBatchSchema.parse(JSON.parse(m.body)));
  assert.equal(batches[0]?.records.length, 100);
  assert.equal(batches[0]?.dropped, 750, "the first batch says how many were dropped");
  assert.equal(batches[0]?.records[0]?.mapping, "m750", "the oldest went first");
  assert.equal(
    batches.reduce((n, b) => n + b.records.length, 0),
    250,
  );
  assert.equal(sent[0]?.properties.relayFleetType, "audit");
  sender.stop();
});

test("a failed send keeps the records for the next interval", async () => {
  let fail = true;
  const got: string[] = [];
  const sender = new AuditSender({ intervalMs: 30, maxBatch: 10, maxQueue: 100, logger });
  sender.attach(async (body) => {
    if (fail) {
      fail = false;
      throw new Error("hub unreachable");
    }
    got.push(body);
  });
  sender.add(record(1));
  sender.add(record(2));
  await sleep(200);
  assert.equal(got.length, 1);
  assert.deepEqual(
    auditBatchSchema.parse(JSON.parse(got[0] ?? "")).records.map((r) => r.mapping),
    ["m1", "m2"],
  );
  sender.stop();
});

test("pump endings map to audit endings", () => {
  const base = { bytesToSocket: 0, bytesToWebSocket: 0 };
  assert.deepEqual(endOfPump({ ...base, endedBy: "completed" }), { end: "completed" });
  assert.deepEqual(endOfPump({ ...base, endedBy: "idle-timeout" }), { end: "idle_timeout" });
  assert.deepEqual(endOfPump({ ...base, endedBy: "socket-error", error: "ECONNRESET" }), {
    end: "reset",
    reason: "socket-error: ECONNRESET",
  });
});
