import assert from "node:assert/strict";
import { test } from "node:test";
import {
  hostRouteKey,
  parsePortRanges,
  parseRouteEntity,
  parseSiteEntity,
  portsOf,
  type RouteRow,
  routeToEntity,
  siteToEntity,
} from "../../lib/ledger/index.ts";

test("port ranges parse, dedupe and reject nonsense with the bad part named", () => {
  const ranges = parsePortRanges("40000-40002, 40001-40003,50000");
  assert.deepEqual([...portsOf(ranges)], [40000, 40001, 40002, 40003, 50000]);
  assert.throws(() => parsePortRanges("10-5"), { code: "RF_ERR_LEDGER_BAD_RANGE", message: /"10-5"/ });
  assert.throws(() => parsePortRanges("70000"), { code: "RF_ERR_LEDGER_BAD_RANGE" });
  assert.throws(() => parsePortRanges(" , "), { code: "RF_ERR_LEDGER_BAD_RANGE" });
});

test("route rows round-trip through their table entity form", () => {
  const row: RouteRow = {
    rowKey: hostRouteKey(443, "Plant.Example.com"),
    kind: "tls-sni",
    port: 443,
    hostname: "plant.example.com",
    siteId: "s1",
    portName: "hmi",
    allowCidrs: ["10.0.0.0/8"],
    maxConnections: 5,
    ratePerMinute: 60,
    idleTimeoutMs: 1000,
    proxyProtocol: true,
  };
  assert.equal(row.rowKey, "443:plant.example.com");
  const entity = routeToEntity(row);
  assert.equal(entity.allowCidrs, '["10.0.0.0/8"]');
  const back = parseRouteEntity({ ...entity } as unknown as Record<string, unknown>);
  assert.ok(back.success);
  assert.deepEqual(back.data, row);
  const limited: RouteRow = { ...row, maxConnectionsPerSource: 3, silentTimeoutMs: 0 };
  const again = parseRouteEntity({ ...routeToEntity(limited) } as unknown as Record<string, unknown>);
  assert.deepEqual(again.success && again.data, limited);
  // Limits a row leaves unset stay unset (the gateway's defaults), not 0 (= off).
  const { idleTimeoutMs: _unset, ...bare } = row;
  const plain = parseRouteEntity({ ...routeToEntity(bare) } as unknown as Record<string, unknown>);
  assert.ok(plain.success);
  assert.equal("idleTimeoutMs" in plain.data, false);
  assert.equal("maxConnectionsPerSource" in plain.data, false);
});

test("bad rows fail validation instead of reaching a gateway", () => {
  assert.equal(parseRouteEntity({ rowKey: "1", kind: "udp", port: 1 }).success, false);
  assert.equal(parseRouteEntity({ rowKey: "1", kind: "tcp", port: 70000 }).success, false);
  assert.equal(parseRouteEntity({ rowKey: "1", kind: "tcp", port: 5, allowCidrs: "{" }).success, false);
  const site = siteToEntity({
    siteId: "s1",
    hybridConnection: "site-s1",
    relayEndpoint: "sb://x",
    sendKeyName: "send",
    sendKey: "k",
    deviceId: "s1",
    createdAt: "2024-01-01T00:00:00.000Z",
  });
  assert.equal(parseSiteEntity(site as unknown as Record<string, unknown>).success, true);
  assert.equal(parseSiteEntity({ ...site, rowKey: "Bad Id" }).success, false);
});
