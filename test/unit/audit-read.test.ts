/**
 * Reading the audit trail back (pure parts): `--since` forms, the API query's validation, module
 * batches out of routed messages (JSON or base64 bodies, as IoT Hub routing writes them), gateway
 * log lines, selection (site, since, newest first, limit), and how failing sources are reported.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseAuditQuery } from "../../cloud/functions/src/audit/query.ts";
import {
  auditFromGatewayLog,
  auditFromRoutedMessages,
  selectAudit,
} from "../../cloud/functions/src/audit/records.ts";
import { type AuditSource, readAudit } from "../../cloud/functions/src/audit/sources.ts";
import type { AuditRecord } from "../../lib/audit/index.ts";
import { parseSince } from "../../lib/audit/since.ts";
import { routedMessage } from "../../sim/iothub-emulator/telemetry.ts";

const NOW = Date.parse("2026-12-01T23:00:00.000Z");

const rec = (over: Partial<AuditRecord> = {}): AuditRecord => ({
  side: "module",
  time: "2026-12-01T22:59:00.000Z",
  startedAt: "2026-12-01T22:58:00.000Z",
  site: "plant-1",
  mapping: "web",
  target: "127.0.0.1:80",
  bytesIn: 10,
  bytesOut: 20,
  durationMs: 60_000,
  end: "completed",
  ...over,
});

const batch = (records: AuditRecord[], dropped = 0) => ({
  type: "relay-fleet.audit",
  v: 1,
  records,
  dropped,
});

test("parseSince takes ISO times and spans back from now, and nothing else", () => {
  assert.equal(parseSince("15m", NOW)?.toISOString(), "2026-12-01T22:45:00.000Z");
  assert.equal(parseSince("2h", NOW)?.toISOString(), "2026-12-01T21:00:00.000Z");
  assert.equal(parseSince("7d", NOW)?.toISOString(), "2026-11-24T23:00:00.000Z");
  assert.equal(parseSince("90s", NOW)?.toISOString(), "2026-12-01T22:58:30.000Z");
  assert.equal(parseSince("2026-12-01T22:00:00Z")?.toISOString(), "2026-12-01T22:00:00.000Z");
  assert.equal(parseSince("2026-12-01T23:00:00+01:00")?.toISOString(), "2026-12-01T22:00:00.000Z");
  assert.equal(parseSince("2026-12-01")?.toISOString(), "2026-12-01T00:00:00.000Z");
  for (const bad of ["yesterday", "15", "15 minutes", "-5m", "2026-13-01", "Dec 1 2026", "", "1w"])
    assert.equal(parseSince(bad, NOW), undefined, bad);
});

test("the API query: defaults, limits, and a 400 naming each bad parameter", () => {
  assert.deepEqual(parseAuditQuery(new URLSearchParams(), NOW), {
    site: undefined,
    since: undefined,
    limit: 200,
  });
  const q = parseAuditQuery(new URLSearchParams("site=plant-1&since=1h&limit=5&code=key"), NOW);
  assert.equal(q.site, "plant-1");
  assert.equal(q.since?.toISOString(), "2026-12-01T22:00:00.000Z");
  assert.equal(q.limit, 5);
  const refused = (query: string) => {
    try {
      parseAuditQuery(new URLSearchParams(query), NOW);
    } catch (err) {
      const e = err as { code: string; status: number; message: string; issues: Array<{ path: string }> };
      return e;
    }
    assert.fail(`accepted ${query}`);
  };
  const since = refused("since=yesterday");
  assert.equal(since.code, "RF_ERR_AUDIT_INVALID_QUERY");
  assert.equal(since.status, 400);
  assert.match(since.message, /since must be an ISO 8601 time .* 15m/);
  assert.deepEqual(
    refused("site=Not_A_Site&limit=0&sites=x")
      .issues.map((i) => i.path)
      .sort(),
    ["(query)", "limit", "site"],
  );
  assert.match(refused("limit=5000").message, /limit/);
  assert.match(refused("limit=abc").message, /limit must be an integer/);
});

test("module records from routed messages: JSON and base64 bodies, other messages ignored, bad ones counted", () => {
  const json = {
    EnqueuedTimeUtc: "2026-12-01T22:59:01.000Z",
    Properties: { relayFleetType: "audit" },
    SystemProperties: { connectionDeviceId: "dev-1", connectionModuleId: "relayListener" },
    Body: batch([rec()], 3),
  };
  const base64 = {
    ...json,
    SystemProperties: { connectionDeviceId: "dev-2" },
    Body: Buffer.from(JSON.stringify(batch([rec({ mapping: "ssh" })]))).toString("base64"),
  };
  const other = { ...json, Properties: { kind: "temperature" }, Body: { t: 21 } };
  const broken = {
    ...json,
    Body: { type: "relay-fleet.audit", v: 1, records: [{ side: "nobody" }], dropped: 0 },
  };
  const parsed = auditFromRoutedMessages([json, base64, other, broken, "not a message"]);
  assert.deepEqual(
    parsed.records.map((r) => [r.device, r.mapping]),
    [
      ["dev-1", "web"],
      ["dev-2", "ssh"],
    ],
    "the hub's connection identity names the device",
  );
  assert.equal(parsed.dropped, 3);
  assert.equal(parsed.skipped, 2);
});

test("the emulator's routed shape round-trips through the reader (JSON body only with JSON + UTF-8)", () => {
  const body = Buffer.from(JSON.stringify(batch([rec()])));
  const base = { deviceId: "d", moduleId: "relayListener", body, receivedAt: NOW };
  const asJson = routedMessage({
    ...base,
    properties: { relayFleetType: "audit", "$.ct": "application/json", "$.ce": "utf-8", "$.on": "audit" },
  });
  assert.equal(asJson.EnqueuedTimeUtc, "2026-12-01T23:00:00.000Z");
  assert.deepEqual(asJson.Properties, { relayFleetType: "audit" });
  assert.equal(asJson.SystemProperties.connectionModuleId, "relayListener");
  assert.equal(asJson.SystemProperties.contentType, "application/json");
  assert.equal(typeof asJson.Body, "object");
  const asBase64 = routedMessage({ ...base, properties: { relayFleetType: "audit" } });
  assert.equal(asBase64.Body, body.toString("base64"));
  for (const m of [asJson, asBase64]) assert.equal(auditFromRoutedMessages([m]).records.length, 1);
});

test("gateway records from log lines; other lines and non-JSON ignored, malformed audit lines counted", () => {
  const line = (audit: unknown) => JSON.stringify({ level: 30, time: NOW, event: "audit", audit, msg: "x" });
  const text = [
    'plain text mentioning "audit"',
    JSON.stringify({ level: 30, event: "started" }),
    line(rec({ side: "gateway", client: "127.0.0.1:5000", publicPort: 21000, target: undefined })),
    line({ side: "gateway" }),
    line(rec({ side: "gateway", end: "refused", reason: "allowlist" })).slice(0, 20),
    "",
  ].join("\n");
  const parsed = auditFromGatewayLog(text);
  assert.equal(parsed.records.length, 1);
  assert.equal(parsed.records[0]?.client, "127.0.0.1:5000");
  assert.equal(parsed.skipped, 1);
});

test("selection: one site, ended since, newest first, at most limit", () => {
  const records = [
    rec({ time: "2026-12-01T22:10:00.000Z", mapping: "old" }),
    rec({ time: "2026-12-01T22:50:00.000Z", mapping: "b" }),
    rec({ time: "2026-12-01T22:55:00.000Z", mapping: "c", side: "gateway" }),
    rec({ time: "2026-12-01T22:55:00.000Z", mapping: "c", side: "module" }),
    rec({ time: "2026-12-01T22:58:00.000Z", mapping: "other", site: "plant-2" }),
  ];
  const since = new Date("2026-12-01T22:30:00.000Z");
  assert.deepEqual(
    selectAudit(records, { site: "plant-1", since, limit: 10 }).map((r) => `${r.mapping}/${r.side}`),
    ["c/gateway", "c/module", "b/module"],
  );
  assert.equal(selectAudit(records, { limit: 2 })[0]?.mapping, "other");
  assert.equal(selectAudit(records, { limit: 2 }).length, 2);
});

test("readAudit: no source is 501, every source failing is 503, one failing is reported beside the rest", async () => {
  const ok: AuditSource = { name: "ok", read: async () => ({ records: [rec()], dropped: 1, skipped: 0 }) };
  const bad: AuditSource = {
    name: "bad",
    read: async () => {
      throw new Error("connection refused");
    },
  };
  await assert.rejects(readAudit([], { limit: 10 }), { code: "RF_ERR_AUDIT_NOT_CONFIGURED", status: 501 });
  await assert.rejects(readAudit([bad], { limit: 10 }), (err: Error & { code?: string; status?: number }) => {
    assert.equal(err.code, "RF_ERR_AUDIT_UNREADABLE");
    assert.equal(err.status, 503);
    assert.match(err.message, /bad: connection refused/);
    return true;
  });
  const answer = await readAudit([ok, bad], { site: "plant-1", limit: 10 });
  assert.equal(answer.count, 1);
  assert.equal(answer.site, "plant-1");
  assert.deepEqual(answer.sources, [
    { name: "ok", ok: true, records: 1, dropped: 1, skipped: 0 },
    { name: "bad", ok: false, error: "connection refused" },
  ]);
});

test("a module names its site in records after a key rotation too (site-<id>.k<n>)", async () => {
  const { parseHybridConnection } = await import("../../lib/ledger/hybrid-connection.ts");
  assert.equal(parseHybridConnection("site-plant-1")?.siteId, "plant-1");
  assert.equal(parseHybridConnection("site-plant-1.k2")?.siteId, "plant-1");
  assert.equal(parseHybridConnection("other"), undefined);
});
