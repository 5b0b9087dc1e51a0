import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { applyLedgerChanges, timestampKey } from "../../lib/ledger/follow-ledger.ts";

const row = (pk: string, rk: string, timestamp: string, etag = timestamp) => ({
  partitionKey: pk,
  rowKey: rk,
  timestamp,
  etag,
});

describe("follow-ledger", () => {
  test("timestamps sort as time, whatever their fraction digits", () => {
    assert.ok(timestampKey("2026-01-01T00:00:00.9Z") > timestampKey("2026-01-01T00:00:00.10Z"));
    assert.equal(timestampKey("2026-01-01T00:00:00Z"), "2026-01-01T00:00:00.0000000Z");
    assert.equal(timestampKey(new Date("2026-01-01T00:00:01.5Z")), "2026-01-01T00:00:01.5000000Z");
    assert.equal(timestampKey(undefined), "");
  });

  test("a tombstone removes an older row, not a row re-created after it", () => {
    const rows = new Map<string, Record<string, unknown>>();
    assert.ok(
      applyLedgerChanges(rows, [
        row("site", "a", "2026-01-01T00:00:01Z"),
        row("route", "1", "2026-01-01T00:00:01Z"),
      ]),
    );
    assert.deepEqual([...rows.keys()].sort(), ["route~1", "site~a"]);
    // Any order in: applied by Timestamp, so the re-creation after the tombstone wins.
    assert.ok(
      applyLedgerChanges(rows, [
        row("site", "a", "2026-01-01T00:00:05Z"),
        row("deleted", "site~a", "2026-01-01T00:00:03Z"),
      ]),
    );
    assert.ok(rows.has("site~a"));
    assert.ok(applyLedgerChanges(rows, [row("deleted", "route~1", "2026-01-01T00:00:04Z")]));
    assert.ok(!rows.has("route~1"));
  });

  test("a row re-read unchanged, a stale tombstone and other partitions are no change", () => {
    const rows = new Map<string, Record<string, unknown>>();
    applyLedgerChanges(rows, [row("site", "a", "2026-01-01T00:00:05Z")]);
    assert.equal(applyLedgerChanges(rows, [row("site", "a", "2026-01-01T00:00:05Z")]), false);
    assert.equal(applyLedgerChanges(rows, [row("deleted", "site~a", "2026-01-01T00:00:02Z")]), false);
    assert.equal(applyLedgerChanges(rows, [row("deleted", "site~zz", "2026-01-01T00:00:09Z")]), false);
    assert.equal(applyLedgerChanges(rows, [row("gateway", "g1", "2026-01-01T00:00:09Z")]), false);
    assert.ok(applyLedgerChanges(rows, [row("site", "a", "2026-01-01T00:00:06Z")]), "a new ETag is a change");
  });
});
