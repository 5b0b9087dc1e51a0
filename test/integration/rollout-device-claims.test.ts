/**
 * "Is this device another site's?" costs the same ledger reads whatever the number of sites: the
 * rollout reads the device's claim (one row) and the claiming site's row, not every site
 * (device-claims.ts). Counted at the table client: every entity a point read or a query returns.
 * A ledger from before claims (site rows, no claims) is claimed once, and still refuses a device
 * of another site with nothing written.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { TableClient } from "@azure/data-tables";
import {
  createDeviceClaims,
  createLedgerOnClient,
  createTableClient,
  DEVICE_PARTITION,
} from "../../lib/ledger/index.ts";
import { startRolloutEnv } from "../helpers/rollout-env.ts";

/** The client with every entity it reads counted (point reads, 404s included, and each row a query yields). */
function countingClient(client: TableClient): { client: TableClient; reads: () => number } {
  let reads = 0;
  const counting = new Proxy(client, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown;
      if (prop === "getEntity")
        return (...args: Parameters<TableClient["getEntity"]>) => {
          reads++;
          return target.getEntity(...args);
        };
      if (prop === "listEntities")
        return (...args: Parameters<TableClient["listEntities"]>) => {
          const rows = target.listEntities(...args);
          return (async function* () {
            for await (const row of rows) {
              reads++;
              yield row;
            }
          })();
        };
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { client: counting, reads: () => reads };
}

test("onboarding a site reads as many ledger rows with 2 sites in the ledger as with 14", async (t) => {
  const env = await startRolloutEnv(t);
  const counted = countingClient(createTableClient(env.azurite.connectionString, "portledger"));
  const ranges = [{ from: 43000, to: 43999 }];
  // Namespace loads re-read at most hourly here, so only the device check could grow.
  const rollout = env.makeRollout({
    ledger: createLedgerOnClient(counted.client, { ranges }),
    namespacePolicy: { refreshMs: 3_600_000 },
  });
  const readsPerSite: number[] = [];
  for (let i = 0; i < 15; i++) {
    const before = counted.reads();
    await rollout.createSite({ siteId: `claim-${i}`, profile: "single" });
    readsPerSite.push(counted.reads() - before);
  }
  // The first onboarding claims the (empty) ledger and reads the namespace loads once.
  const steady = readsPerSite.slice(2);
  assert.ok(
    steady.every((r) => r === steady[0]),
    `every onboarding after the second reads the same rows: ${readsPerSite.join(", ")}`,
  );
  assert.ok((steady[0] ?? 0) < 15, `a handful of rows per site, not one per site: ${steady[0]}`);

  // A device of another site is still refused, at the same cost, with nothing written.
  const before = counted.reads();
  await assert.rejects(
    rollout.createSite({ siteId: "claim-thief", deviceId: "claim-7", profile: "single" }),
    (err: { code?: string }) => err.code === "RF_ERR_ROLLOUT_DEVICE_IN_OTHER_SITE",
  );
  // An onboarding reads its row once and a new site's routes not at all (apply.ts): a refusal,
  // which reads the row and the claims, may read a few rows more, but not one per site.
  const refusalReads = counted.reads() - before;
  assert.ok(refusalReads < 15, `the refusal reads a handful of rows, not one per site: ${refusalReads}`);
  assert.equal(await rollout.deps.ledger.getSite("claim-thief"), undefined);
  assert.equal(await rollout.deps.ledger.getDeviceClaim("claim-7"), "claim-7");

  // A device that left its site may join another (its claim is confirmed against the site's row).
  await rollout.addDevice("claim-1", { deviceId: "claim-1b" });
  await rollout.removeDevice("claim-1", "claim-1b");
  assert.equal(await rollout.deps.ledger.getDeviceClaim("claim-1b"), undefined, "the claim is released");
  await rollout.deps.ledger.claimDevices("claim-1", ["claim-1b"]); // a claim left behind
  const joined = await rollout.addDevice("claim-2", { deviceId: "claim-1b" });
  assert.equal(joined.created, true);
  assert.equal(await rollout.deps.ledger.getDeviceClaim("claim-1b"), "claim-2");

  // Offboarding releases the site's claims.
  await rollout.removeSite("claim-3");
  assert.equal(await rollout.deps.ledger.getDeviceClaim("claim-3"), undefined);
});

test("a ledger from before device claims is claimed once, and a device of another site is still refused", async (t) => {
  const env = await startRolloutEnv(t);
  await env.rollout.createSite({ siteId: "old-1", deviceIds: ["old-1a", "old-1b"], profile: "single" });
  // Take the claims away, as a ledger written before them has none.
  const client = createTableClient(env.azurite.connectionString, "portledger");
  for await (const e of client.listEntities({
    queryOptions: { filter: `PartitionKey eq '${DEVICE_PARTITION}'` },
  }))
    await client.deleteEntity(DEVICE_PARTITION, String(e.rowKey));
  assert.equal(await createDeviceClaims(client).deviceClaimsComplete(), false);

  const fresh = env.makeRollout(); // a newly started instance
  await assert.rejects(
    fresh.createSite({ siteId: "old-2", deviceId: "old-1b", profile: "single" }),
    (err: { code?: string }) => err.code === "RF_ERR_ROLLOUT_DEVICE_IN_OTHER_SITE",
  );
  assert.equal(await fresh.deps.ledger.getSite("old-2"), undefined, "nothing written");
  assert.equal(
    await fresh.deps.ledger.getDeviceClaim("old-1a"),
    "old-1",
    "the old site's devices are claimed",
  );
  assert.equal(await createDeviceClaims(client).deviceClaimsComplete(), true);
});
