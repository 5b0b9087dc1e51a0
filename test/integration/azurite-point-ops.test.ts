/**
 * Azurite with its point lookups answered from the RowKey index (sim/azurite.ts, ADR 0032): the
 * unmodified @azure/data-tables client still sees Azure's semantics when one RowKey is in several
 * partitions. Every point operation (read, insert, replace, merge, delete, a batch) touches the
 * entity of its own partition and no other; a 409 or 404 comes from that partition alone.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { TableClient, type TableTransaction } from "@azure/data-tables";
import { statusOf } from "../../lib/ledger/index.ts";
import { startAzurite } from "../../sim/azurite.ts";

test("point operations on one RowKey in several partitions touch their own partition only", {
  timeout: 60_000,
}, async (t) => {
  const azurite = await startAzurite();
  t.after(() => azurite.close());
  const client = TableClient.fromConnectionString(azurite.connectionString, "pointops", {
    allowInsecureConnection: true,
  });
  await client.createTable();
  const partitions = ["device", "route", "site"];
  for (const partitionKey of partitions)
    await client.createEntity({ partitionKey, rowKey: "plant-1", of: partitionKey });
  // Filler rows so each partition has more than the one shared RowKey.
  for (let i = 0; i < 50; i++)
    await client.createEntity({ partitionKey: "route", rowKey: `r${i}`, of: "filler" });

  for (const partitionKey of partitions) {
    const e = await client.getEntity<{ of: string }>(partitionKey, "plant-1");
    assert.equal(e.of, partitionKey);
  }
  const status = async (p: Promise<unknown>) =>
    p.then(
      () => 200,
      (err: unknown) => statusOf(err),
    );
  assert.equal(await status(client.getEntity("tombstone", "plant-1")), 404);
  assert.equal(await status(client.createEntity({ partitionKey: "site", rowKey: "plant-1" })), 409);
  assert.equal(
    await status(client.createEntity({ partitionKey: "tombstone", rowKey: "plant-1", of: "tombstone" })),
    200,
  );

  await client.upsertEntity({ partitionKey: "route", rowKey: "plant-1", of: "replaced" }, "Replace");
  await client.updateEntity({ partitionKey: "device", rowKey: "plant-1", extra: 1 }, "Merge");
  const site = await client.getEntity<{ of: string; extra?: number }>("site", "plant-1");
  assert.deepEqual([site.of, site.extra], ["site", undefined]);
  const device = await client.getEntity<{ of: string; extra?: number }>("device", "plant-1");
  assert.deepEqual([device.of, device.extra], ["device", 1]);
  assert.equal((await client.getEntity<{ of: string }>("route", "plant-1")).of, "replaced");

  // An update that names a stale ETag is refused for that entity only.
  const stale = await client.getEntity("site", "plant-1");
  await client.upsertEntity({ partitionKey: "site", rowKey: "plant-1", of: "site-2" }, "Replace");
  assert.equal(
    await status(
      client.updateEntity({ partitionKey: "site", rowKey: "plant-1", of: "x" }, "Replace", {
        etag: stale.etag,
      }),
    ),
    412,
  );

  await client.deleteEntity("route", "plant-1");
  assert.equal(await status(client.getEntity("route", "plant-1")), 404);
  assert.equal((await client.getEntity<{ of: string }>("device", "plant-1")).of, "device");
  assert.equal((await client.getEntity<{ of: string }>("site", "plant-1")).of, "site-2");

  // A batch in one partition: its rows only.
  const batch: TableTransaction["actions"] = [
    ["upsert", { partitionKey: "device", rowKey: "plant-1", of: "batched" }, "Replace"],
    ["create", { partitionKey: "device", rowKey: "plant-2", of: "batched" }],
  ];
  await client.submitTransaction(batch);
  assert.equal((await client.getEntity<{ of: string }>("device", "plant-1")).of, "batched");
  assert.equal((await client.getEntity<{ of: string }>("site", "plant-1")).of, "site-2");
  assert.equal((await client.getEntity<{ of: string }>("tombstone", "plant-1")).of, "tombstone");

  const rows: string[] = [];
  for await (const e of client.listEntities({ queryOptions: { filter: "RowKey eq 'plant-1'" } }))
    rows.push(String(e.partitionKey));
  assert.deepEqual(rows.sort(), ["device", "site", "tombstone"]);
});
