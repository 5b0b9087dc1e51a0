import assert from "node:assert/strict";
import { test } from "node:test";
import { compileAllowlist } from "../../cloud/gateway/src/allowlist.ts";
import {
  buildRoutingTable,
  diffRoutes,
  emptyTable,
  lookupName,
} from "../../cloud/gateway/src/routing-table.ts";
import { parseLedgerRows } from "../../lib/ledger/read-routes.ts";
import { ledgerRouteRow, ledgerSiteRow } from "../helpers/ledger-rows.ts";

const site = ledgerSiteRow;
const route = ledgerRouteRow;
const table = (rows: Record<string, unknown>[]) => buildRoutingTable(parseLedgerRows(rows), 1);

test("builds dedicated and shared ports and joins sites", () => {
  const t = table([
    site("s1"),
    route("40001"),
    route("443", { kind: "shared", siteId: "", portName: "" }),
    route("443:a.example.com", { portName: "web" }),
    route("443:*.wild.example.com", { portName: "web" }),
    route("80:b.example.com", { kind: "http-host" }),
  ]);
  assert.deepEqual([...t.ports.keys()].sort(), [40001, 443, 80]);
  assert.equal(t.routeCount, 4);
  const shared = t.ports.get(443);
  assert.ok(shared?.kind === "shared");
  assert.equal(lookupName(shared.tls, "a.example.com")?.portName, "web");
  assert.equal(lookupName(shared.tls, "x.wild.example.com")?.key, "443:*.wild.example.com");
  assert.equal(lookupName(shared.tls, "y.x.wild.example.com"), undefined);
  assert.equal(shared.http.size, 0);
  assert.equal(t.problems.length, 0);
});

test("bad rows are skipped with a reason; good rows still load", () => {
  const t = table([
    site("s1"),
    { ...site("bad site"), rowKey: "Bad Site" },
    route("40001"),
    route("40002", { siteId: "nosuch" }),
    route("40003", { allowCidrs: '["10.0.0.0/33"]' }),
    route("40004", { port: 40005 }),
    route("40006", { kind: "teleport" }),
    route("40001:x.example.com"),
    route("40007", { maxConnections: -1 }),
    route("40008", { allowCidrs: "not json" }),
  ]);
  assert.deepEqual([...t.ports.keys()], [40001]);
  assert.deepEqual(
    t.problems.map((p) => p.rowKey).sort(),
    ["40001:x.example.com", "40002", "40003", "40004", "40006", "40007", "40008", "Bad Site"].sort(),
  );
  for (const p of t.problems) assert.ok(p.message.length > 0);
});

test("diffRoutes: open, close, update and no-op", () => {
  const a = table([site("s1"), route("40001"), route("40002"), route("443:a.example.com")]);
  const b = table([
    site("s1"),
    route("40001"),
    route("40003"),
    route("443:a.example.com", { maxConnections: 5 }),
  ]);
  assert.deepEqual(diffRoutes(a, b), { open: [40003], close: [40002], update: [443] });
  assert.deepEqual(diffRoutes(a, a), { open: [], close: [], update: [] });
  assert.deepEqual(diffRoutes(emptyTable(), a), { open: [443, 40001, 40002], close: [], update: [] });
  assert.deepEqual(diffRoutes(a, emptyTable()), { open: [], close: [443, 40001, 40002], update: [] });
});

test("a rotated site key or a new name on a shared port is an update", () => {
  const a = table([site("s1"), route("40001"), route("443:a.example.com")]);
  const rotated = table([site("s1", "k2"), route("40001"), route("443:a.example.com")]);
  assert.deepEqual(diffRoutes(a, rotated).update, [443, 40001]);
  const more = table([site("s1"), route("40001"), route("443:a.example.com"), route("443:b.example.com")]);
  assert.deepEqual(diffRoutes(a, more), { open: [], close: [], update: [443] });
});

test("allowlist: CIDRs, bare addresses, IPv4-mapped IPv6 clients", () => {
  const list = compileAllowlist(["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]);
  assert.ok(list.allows("10.1.2.3"));
  assert.ok(list.allows("::ffff:10.1.2.3"));
  assert.ok(list.allows("192.0.2.7"));
  assert.ok(list.allows("2001:db8::1"));
  assert.ok(!list.allows("11.0.0.1"));
  assert.ok(!list.allows("::ffff:11.0.0.1"));
  assert.ok(!list.allows("2001:db9::1"));
  assert.ok(!list.allows(undefined));
  assert.ok(compileAllowlist(["::ffff:127.0.0.0/104"]).allows("127.0.0.1"));
  assert.ok(compileAllowlist([]).allows("203.0.113.1"));
  assert.throws(() => compileAllowlist(["300.0.0.0/8"]), { code: "RF_ERR_GATEWAY_CIDR" });
});

test("a route row naming a reserved mapping name is a problem, as in the rollout and the module", () => {
  // The gateway checked route rows with the bare name pattern, which lets "constructor" through.
  const t = table([site("s1"), route("40001", { portName: "constructor" }), route("40002")]);
  assert.equal(t.routeCount, 1);
  assert.deepEqual(
    t.problems.map((p) => [p.rowKey, p.message]),
    [["40001", "portName is missing or not a mapping name"]],
  );
});
