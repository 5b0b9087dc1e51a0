/**
 * Sites spread over relay namespaces (issue 18, ADR 0025), with two relay emulators as two
 * namespaces: new sites fill the first namespace up to its fill limit and then go to the next,
 * none is placed past its limit, a site that fits nowhere is refused with nothing written, and a
 * site moved to the other namespace keeps its public ports while its modules and ledger row
 * follow it there.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import deviceSdk from "azure-iot-device";
import mqttTransport from "azure-iot-device-mqtt";
import { createEmulatorRelayAdmin } from "../../cloud/functions/src/relay-admin/index.ts";
import { MODULE_ID, type RelayNamespace } from "../../cloud/functions/src/rollout/index.ts";
import { keyFingerprint } from "../../lib/hyco/sas.ts";
import { startRelayEmulator } from "../../sim/relay-emulator/index.ts";
import { startRolloutEnv } from "../helpers/rollout-env.ts";

test("sites fill one relay namespace to its limit, then the next; a moved site keeps its public ports", async (t) => {
  const env = await startRolloutEnv(t);
  const second = await startRelayEmulator();
  t.after(() => second.close());
  const ns1: RelayNamespace = { admin: env.deps.relay, connections: 100 };
  const ns2: RelayNamespace = {
    admin: createEmulatorRelayAdmin({
      endpoint: second.url,
      manageKeyName: second.manageKeyName,
      manageKey: second.manageKey,
    }),
    connections: 100,
  };
  // A one-device site counts 2 listener channels + 16 standbys = 18 connections; a namespace's
  // limit is 80 of its 100: four sites (72) fit the first, the fifth goes to the second.
  const rollout = env.makeRollout({
    relayNamespaces: [ns1, ns2],
    namespacePolicy: { listenerChannels: 2, standbyConnections: 16, maxFill: 0.8 },
  });
  for (let i = 0; i < 6; i++) await rollout.createSite({ siteId: `ns-${i}`, profile: "single" });
  const endpointOf = async (siteId: string) => (await env.deps.ledger.getSite(siteId))?.relayEndpoint;
  for (let i = 0; i < 4; i++)
    assert.equal(await endpointOf(`ns-${i}`), ns1.admin.endpoint, `ns-${i} in the first`);
  for (let i = 4; i < 6; i++)
    assert.equal(await endpointOf(`ns-${i}`), ns2.admin.endpoint, `ns-${i} in the second`);
  const hcs = async (ns: RelayNamespace) => (await ns.admin.list()).map((h) => h.name).sort();
  assert.deepEqual(
    await hcs(ns2),
    ["site-ns-4", "site-ns-5"],
    "each site's hybrid connection is in its namespace",
  );
  const twin = await env.deps.hub.getModuleTwin("ns-4", MODULE_ID);
  assert.equal(
    (twin?.desired.relay as { endpoint?: string } | undefined)?.endpoint,
    ns2.admin.endpoint,
    "its module listens there",
  );
  let loads = await rollout.relayNamespaces();
  assert.deepEqual(
    loads.map((l) => [l.sites, l.connections, l.limit]),
    [
      [4, 72, 80],
      [2, 36, 80],
    ],
  );

  // Two more fill the second; then nothing fits: refused before anything is written.
  await rollout.createSite({ siteId: "ns-6", profile: "single" });
  await rollout.createSite({ siteId: "ns-7", profile: "single" });
  await assert.rejects(
    rollout.createSite({ siteId: "ns-8", profile: "single" }),
    (err: Error & { code?: string; status?: number }) => {
      assert.equal(err.code, "RF_ERR_ROLLOUT_RELAY_FULL");
      assert.match(err.message, /Nothing was changed/);
      return true;
    },
  );
  assert.equal(await env.deps.ledger.getSite("ns-8"), undefined);
  assert.equal(await env.deps.hub.getDevice("ns-8"), undefined, "no device was created");
  loads = await rollout.relayNamespaces();
  for (const l of loads) assert.ok(l.connections <= l.limit, `${l.endpoint}: ${l.connections} of ${l.limit}`);

  // Moving needs room: the second is full, an unknown namespace is named as such.
  await assert.rejects(rollout.moveSite("ns-0", { namespace: ns2.admin.endpoint }), {
    code: "RF_ERR_ROLLOUT_RELAY_FULL",
  });
  await assert.rejects(rollout.moveSite("ns-0", { namespace: "sb://nowhere.example" }), {
    code: "RF_ERR_ROLLOUT_NAMESPACE_UNKNOWN",
  });
  assert.equal(await endpointOf("ns-0"), ns1.admin.endpoint);

  // Room in the second again, and ns-0's module (a stand-in on the real device SDK reporting the
  // key it was given) connected: the site moves, its public ports stay.
  await rollout.removeSite("ns-7");
  const portsBefore = (await env.deps.ledger.listRoutes({ siteId: "ns-0" })).map((r) => r.port).sort();
  assert.equal(portsBefore.length, 1);
  const saved = { ...process.env };
  Object.assign(process.env, env.hubEmulator.moduleEnvironment("ns-0", MODULE_ID));
  const client = await deviceSdk.ModuleClient.fromEnvironment(mqttTransport.Mqtt);
  process.env = saved;
  await client.open();
  try {
    const moduleTwin = await client.getTwin();
    moduleTwin.on("properties.desired", () => {
      const desired = moduleTwin.properties.desired as { $version: number; relay?: { sasKey?: string } };
      const key = desired.relay?.sasKey;
      if (key)
        moduleTwin.properties.reported.update(
          {
            appliedDesiredVersion: desired.$version,
            relay: { status: "online", keyFingerprint: keyFingerprint(key) },
          },
          () => {},
        );
    });
    const moved = await rollout.moveSite("ns-0", { namespace: ns2.admin.endpoint });
    assert.equal(moved.moved, true);
    assert.equal(moved.from, ns1.admin.endpoint);
    assert.equal(moved.to, ns2.admin.endpoint);
  } finally {
    await client.close();
  }
  const row = await env.deps.ledger.getSite("ns-0");
  assert.equal(
    row?.relayEndpoint,
    ns2.admin.endpoint,
    "the ledger row (the gateways' source) names the new namespace",
  );
  assert.equal(row?.hybridConnection, "site-ns-0.k1");
  const portsAfter = (await env.deps.ledger.listRoutes({ siteId: "ns-0" })).map((r) => r.port).sort();
  assert.deepEqual(portsAfter, portsBefore, "the public ports are kept");
  const desired = (await env.deps.hub.getModuleTwin("ns-0", MODULE_ID))?.desired.relay as {
    endpoint: string;
    hybridConnection: string;
    sasKey: string;
  };
  assert.equal(desired.endpoint, ns2.admin.endpoint);
  assert.equal(desired.hybridConnection, "site-ns-0.k1");
  assert.equal(desired.sasKey, (await ns2.admin.getRule("site-ns-0.k1", "listen"))?.primaryKey);
  assert.ok(
    !(await hcs(ns1)).some((n) => n.startsWith("site-ns-0")),
    "the old namespace has none of it left",
  );
  // Moving again to where it is changes nothing; reconcile sees no drift for it.
  assert.equal((await rollout.moveSite("ns-0", { namespace: ns2.admin.endpoint })).moved, false);
  const report = await rollout.reconcile({ repair: false });
  assert.deepEqual(
    report.items.filter((i) => i.siteId === "ns-0" && i.kind !== "module"),
    [],
  );
  loads = await rollout.relayNamespaces();
  assert.deepEqual(
    loads.map((l) => l.sites),
    [3, 4],
  );
});
