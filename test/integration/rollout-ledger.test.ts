import assert from "node:assert/strict";
import { test } from "node:test";
import {
  COUNTER_PARTITION,
  createLedger,
  createTableClient,
  HUB_PHASE_COUNTER,
  type PortLedger,
} from "../../lib/ledger/index.ts";
import { startAzurite } from "../../sim/azurite.ts";

async function setup(t: { after(fn: () => unknown): void }, ranges = [{ from: 41000, to: 41099 }]) {
  const azurite = await startAzurite();
  t.after(() => azurite.close());
  const make = () => createLedger(azurite.connectionString, "portledger", { ranges });
  const first = make();
  await first.ensureTable();
  return { azurite, make, first };
}

test("50 concurrent allocations from 5 ledger instances never share a port", async (t) => {
  const { make } = await setup(t);
  // Five instances = five function hosts: each has its own hint cache, so only the table's
  // insert-if-absent keeps them apart.
  const ledgers: PortLedger[] = Array.from({ length: 5 }, make);
  const rows = await Promise.all(
    Array.from({ length: 50 }, (_, i) =>
      (ledgers[i % 5] as PortLedger).allocate({
        siteId: `site-${i}`,
        portName: "rdp",
        endpoint: { kind: "tcp" },
      }),
    ),
  );
  const ports = rows.map((r) => r.port);
  assert.equal(new Set(ports).size, 50, "every allocation got its own port");
  const stored = await (ledgers[0] as PortLedger).listRoutes();
  assert.equal(stored.length, 50);
  assert.equal(new Set(stored.map((r) => r.port)).size, 50);
  assert.deepEqual(new Set(stored.map((r) => r.siteId)), new Set(rows.map((r) => r.siteId)));
  for (const r of stored) assert.ok(r.port >= 41000 && r.port <= 41099);
});

test("released ports are reused, exhaustion is a clear error, named ports conflict", async (t) => {
  const { make } = await setup(t, [{ from: 42000, to: 42002 }]);
  const a = make();
  const b = make();
  const got = [];
  for (let i = 0; i < 3; i++)
    got.push(await a.allocate({ siteId: `s${i}`, portName: "p", endpoint: { kind: "tcp" } }));
  await assert.rejects(b.allocate({ siteId: "s9", portName: "p", endpoint: { kind: "tcp" } }), {
    code: "RF_ERR_LEDGER_RANGE_EXHAUSTED",
  });
  await a.release(String(got[1]?.port));
  // b learned the ports were taken; the refresh on exhaustion lets it see the release by a.
  const reused = await b.allocate({ siteId: "s9", portName: "p", endpoint: { kind: "tcp" } });
  assert.equal(reused.port, got[1]?.port);
  await assert.rejects(
    a.allocate({ siteId: "other", portName: "x", endpoint: { kind: "tcp", port: 42000 } }),
    {
      code: "RF_ERR_LEDGER_PORT_TAKEN",
    },
  );
  // The same owner asking again is a retry, not a conflict.
  const again = await a.allocate({ siteId: "s0", portName: "p", endpoint: { kind: "tcp", port: 42000 } });
  assert.equal(again.siteId, "s0");
  await assert.rejects(a.allocate({ siteId: "s0", portName: "p", endpoint: { kind: "tcp", port: 80 } }), {
    code: "RF_ERR_LEDGER_PORT_OUT_OF_RANGE",
  });
});

test("host-name routes on a shared port are unique and the shared row goes with the last one", async (t) => {
  const { first: ledger } = await setup(t);
  const results = await Promise.allSettled(
    Array.from({ length: 10 }, (_, i) =>
      ledger.allocate({
        siteId: `s${i}`,
        portName: "web",
        endpoint: { kind: "tls-sni", port: 443, hostname: "same.example.com" },
      }),
    ),
  );
  assert.equal(results.filter((r) => r.status === "fulfilled").length, 1, "one winner for one host name");
  for (const r of results) {
    if (r.status === "rejected")
      assert.equal((r.reason as { code?: string }).code, "RF_ERR_LEDGER_HOSTNAME_TAKEN");
  }
  const other = await ledger.allocate({
    siteId: "s1",
    portName: "web",
    endpoint: { kind: "tls-sni", port: 443, hostname: "Other.example.com" },
  });
  assert.equal(other.rowKey, "443:other.example.com");
  let rows = await ledger.listRoutes();
  assert.equal(rows.filter((r) => r.kind === "shared").length, 1);
  await ledger.allocate({ siteId: "s1", portName: "x", endpoint: { kind: "tcp", port: 41000 } });
  const hostOnDedicated = { kind: "http-host", port: 41000, hostname: "a.b" } as const;
  await assert.rejects(ledger.allocate({ siteId: "s2", portName: "y", endpoint: hostOnDedicated }), {
    code: "RF_ERR_LEDGER_PORT_TAKEN",
  });
  for (const r of rows.filter((x) => x.port === 443 && x.kind !== "shared")) await ledger.release(r.rowKey);
  rows = await ledger.listRoutes();
  assert.equal(rows.filter((r) => r.port === 443).length, 0, "shared row removed with its last host route");
});

test("an instance's hints (lowest free port, known shared ports) never outlive another's release", async (t) => {
  // 443 is in the ranges too (last, so automatic choices come from 43000 up): it can be made dedicated.
  const { make } = await setup(t, [
    { from: 43000, to: 43009 },
    { from: 443, to: 443 },
  ]);
  const a = make();
  const b = make();
  const tcp = (siteId: string) => ({ siteId, portName: "p", endpoint: { kind: "tcp" } as const });
  const ports = [];
  for (let i = 0; i < 4; i++) ports.push((await a.allocate(tcp(`s${i}`))).port);
  assert.deepEqual(ports, [43000, 43001, 43002, 43003]);
  // Its own release: the next allocation takes the lowest free port again, not the next one.
  await a.release("43001");
  assert.equal((await a.allocate(tcp("s4"))).port, 43001);
  assert.equal((await a.allocate(tcp("s5"))).port, 43004);

  // a knows 443 is shared; b releases the last host route there, so the shared row goes.
  const host = (siteId: string, hostname: string) => ({
    siteId,
    portName: "web",
    endpoint: { kind: "tls-sni", port: 443, hostname } as const,
  });
  const first = await a.allocate(host("s0", "one.example.com"));
  await b.release(first.rowKey);
  assert.equal((await b.listRoutes()).filter((r) => r.port === 443).length, 0);
  // a's next host route on 443 writes the shared row again (its read after the insert).
  await a.allocate(host("s1", "two.example.com"));
  const on443 = (await b.listRoutes()).filter((r) => r.port === 443);
  assert.deepEqual(on443.map((r) => r.kind).sort(), ["shared", "tls-sni"]);
  // b makes 443 a dedicated port meanwhile: a's hint gives way to the refusal.
  await b.release("443:two.example.com");
  await b.allocate({ siteId: "s9", portName: "raw", endpoint: { kind: "tcp", port: 443 } });
  await assert.rejects(a.allocate(host("s2", "three.example.com")), { code: "RF_ERR_LEDGER_PORT_TAKEN" });
  const left = (await b.listRoutes()).filter((r) => r.port === 443);
  assert.deepEqual(
    left.map((r) => r.rowKey),
    ["443"],
    "the refused host route is not left behind",
  );
});

test("site rows are stored, listed and deleted", async (t) => {
  const { first: ledger } = await setup(t);
  const row = {
    siteId: "s1",
    hybridConnection: "site-s1",
    relayEndpoint: "sb://127.0.0.1:1",
    sendKeyName: "send",
    sendKey: "secret",
    deviceId: "s1",
    createdAt: new Date().toISOString(),
  };
  await ledger.putSite(row);
  await ledger.putSite({ ...row, sendKey: "secret2" });
  assert.equal((await ledger.getSite("s1"))?.sendKey, "secret2");
  assert.equal((await ledger.listSites()).length, 1);
  await ledger.deleteSite("s1");
  await ledger.deleteSite("s1");
  assert.equal(await ledger.getSite("s1"), undefined);
});

test("ordinal blocks taken at once by 5 ledger instances never overlap and leave no gap; a bad counter row is a clear error", async (t) => {
  const { make, azurite } = await setup(t);
  const ledgers: PortLedger[] = Array.from({ length: 5 }, make);
  // 20 takes of 1 … 8 ordinals, five writers racing on one counter row (ETag conflicts retried).
  const sizes = Array.from({ length: 20 }, (_, i) => (i % 8) + 1);
  const firsts = await Promise.all(
    sizes.map((n, i) => (ledgers[i % 5] as PortLedger).takeOrdinals(HUB_PHASE_COUNTER, n)),
  );
  const taken = firsts.flatMap((first, i) => Array.from({ length: sizes[i] ?? 0 }, (_, j) => first + j));
  const total = sizes.reduce((a, b) => a + b, 0);
  assert.equal(new Set(taken).size, total, "no ordinal handed out twice");
  assert.deepEqual(
    [...taken].sort((a, b) => a - b),
    Array.from({ length: total }, (_, k) => k),
    "the blocks cover 0 … total − 1",
  );
  assert.equal(await (ledgers[0] as PortLedger).takeOrdinals(HUB_PHASE_COUNTER, 0), total, "0 takes nothing");
  await assert.rejects((ledgers[0] as PortLedger).takeOrdinals(HUB_PHASE_COUNTER, -1), {
    code: "RF_ERR_LEDGER_BAD_COUNTER",
  });

  // A counter row someone broke: refused with its own code, nothing taken, nothing written.
  const client = createTableClient(azurite.connectionString, "portledger");
  await client.upsertEntity({ partitionKey: COUNTER_PARTITION, rowKey: "broken", next: "seven" }, "Replace");
  await assert.rejects((ledgers[1] as PortLedger).takeOrdinals("broken", 3), {
    code: "RF_ERR_LEDGER_BAD_COUNTER",
  });
  const row = await client.getEntity(COUNTER_PARTITION, "broken");
  assert.equal(row.next, "seven");
});
