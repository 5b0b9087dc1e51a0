/**
 * A gateway follows the port ledger by its changes (issue 18): against Azurite, the follower's
 * view always equals a full read, deletions arrive through tombstones, and at steady state it
 * reads no rows at all — its cost is the number of changes, not the number of routes.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { LedgerFollower } from "../../lib/ledger/follow-ledger.ts";
import { createLedger, type PortLedger, type SiteRow } from "../../lib/ledger/index.ts";
import { type LedgerSnapshot, readLedger } from "../../lib/ledger/read-routes.ts";
import { startAzurite } from "../../sim/azurite.ts";
import { sleep } from "../helpers/index.ts";

async function setup(t: { after(fn: () => unknown): void }) {
  const azurite = await startAzurite();
  t.after(() => azurite.close());
  const ledger = createLedger(azurite.connectionString, "portledger", {
    ranges: [{ from: 43000, to: 43999 }],
  });
  await ledger.ensureTable();
  return ledger;
}

const site = (siteId: string): SiteRow => ({
  siteId,
  hybridConnection: `hc-${siteId}`,
  relayEndpoint: "sb://relay.example/",
  deviceId: siteId,
  createdAt: new Date().toISOString(),
});

/** What a gateway routes by, in a stable order. */
function view(s: LedgerSnapshot) {
  return {
    sites: [...s.sites.keys()].sort(),
    routes: s.routes.map((r) => `${r.key}→${r.siteId}/${r.portName}`).sort(),
    problems: s.problems.map((p) => `${p.partitionKey}/${p.rowKey}`).sort(),
  };
}

async function assertSameAsFullRead(ledger: PortLedger, follower: LedgerFollower, what: string) {
  assert.deepEqual(view(await follower.read()), view(await readLedger(ledger.client)), what);
}

test("the follower's view equals a full read through adds, updates, releases and site deletions", async (t) => {
  const ledger = await setup(t);
  // windowMs 0: the Date header's second plus the follower's extra second is the only look-back.
  const follower = new LedgerFollower(ledger.client, { windowMs: 0 });
  await assertSameAsFullRead(ledger, follower, "empty ledger");

  for (const id of ["a", "b", "c"]) {
    await ledger.putSite(site(id));
    await ledger.allocate({ siteId: id, portName: "rdp", endpoint: { kind: "tcp" } });
  }
  await ledger.allocate({
    siteId: "a",
    portName: "web",
    endpoint: { kind: "http-host", port: 43500, hostname: "a.example.test" },
  });
  await assertSameAsFullRead(ledger, follower, "after adds");

  const [bRoute] = await ledger.listRoutes({ siteId: "b" });
  assert.ok(bRoute);
  await ledger.updateRoute({ ...bRoute, portName: "ssh" });
  await ledger.release(bRoute.rowKey);
  await ledger.deleteSite("b");
  const [aWeb] = (await ledger.listRoutes({ siteId: "a" })).filter((r) => r.kind === "http-host");
  assert.ok(aWeb);
  // Releasing the last host route also deletes the shared port row: both deletions must arrive.
  await ledger.release(aWeb.rowKey);
  await assertSameAsFullRead(ledger, follower, "after update, releases and a site deletion");
  const after = view(await follower.read());
  assert.deepEqual(after.sites, ["a", "c"]);
  assert.equal(after.routes.length, 2);

  // A site deleted and onboarded again survives its own older tombstone.
  await ledger.deleteSite("c");
  await ledger.putSite(site("c"));
  await assertSameAsFullRead(ledger, follower, "after a site re-created over its tombstone");
  assert.ok((await follower.read()).sites.has("c"));
});

test("at steady state the follower reads no rows; each change is read at most twice", async (t) => {
  const ledger = await setup(t);
  for (let i = 0; i < 40; i++) {
    await ledger.putSite(site(`s${i}`));
    await ledger.allocate({ siteId: `s${i}`, portName: "rdp", endpoint: { kind: "tcp" } });
  }
  const follower = new LedgerFollower(ledger.client, { windowMs: 0 });
  await follower.read();
  assert.equal(follower.stats.rowsRead, 80, "the first read is a full read of 80 rows");
  // The next poll looks back to a second before the full read, so it may re-read the newest rows
  // once; past that look-back (the Date header's whole second plus one), polls read nothing.
  await sleep(2_500);
  await follower.read();
  const before = follower.stats.rowsRead;
  for (let i = 0; i < 5; i++) await follower.read();
  assert.equal(follower.stats.rowsRead - before, 0, "no rows read while nothing changes");
  assert.equal(follower.stats.fullReads, 1);

  // Three changes, then polls spaced past the look-back: at most 2 reads per changed entity
  // (the allocation writes one row; the release writes a tombstone and deletes a row).
  const start = follower.stats.rowsRead;
  await ledger.putSite({ ...site("s1"), profile: "changed" });
  const added = await ledger.allocate({ siteId: "s2", portName: "ssh", endpoint: { kind: "tcp" } });
  await ledger.release(added.rowKey);
  for (let i = 0; i < 3; i++) {
    await follower.read();
    await sleep(1_200);
  }
  const read = follower.stats.rowsRead - start;
  assert.ok(read >= 2 && read <= 2 * 3, `read ${read} entities for 3 changes`);
  assert.equal(follower.stats.fullReads, 1, "no full read was needed");
  await assertSameAsFullRead(ledger, follower, "after the changes");
});

test("a row deleted by hand (no tombstone) goes at the next full read; old tombstones are pruned", async (t) => {
  const ledger = await setup(t);
  await ledger.putSite(site("hand"));
  let clock = Date.now();
  const follower = new LedgerFollower(ledger.client, {
    windowMs: 0,
    fullReadIntervalMs: 60_000,
    now: () => clock,
  });
  assert.ok((await follower.read()).sites.has("hand"));
  await ledger.client.deleteEntity("site", "hand");
  assert.ok(
    (await follower.read()).sites.has("hand"),
    "a delta read cannot see a deletion without a tombstone",
  );
  clock += 60_000;
  assert.ok(!(await follower.read()).sites.has("hand"), "the full read drops it");
  assert.equal(follower.stats.fullReads, 2);

  await ledger.putSite(site("gone"));
  await ledger.deleteSite("gone");
  assert.equal(
    await ledger.pruneTombstones(new Date(Date.now() - 3_600_000)),
    0,
    "a fresh tombstone is kept",
  );
  assert.equal(await ledger.pruneTombstones(new Date(Date.now() + 60_000)), 1, "an old one is pruned");
});
