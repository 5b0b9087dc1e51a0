import assert from "node:assert/strict";
import { test } from "node:test";
import deviceSdk from "azure-iot-device";
import mqttTransport from "azure-iot-device-mqtt";
import { MODULE_ID } from "../../cloud/functions/src/rollout/index.ts";
import { keyFingerprint } from "../../lib/hyco/sas.ts";
import { startRolloutEnv } from "../helpers/rollout-env.ts";

test("rotate-keys moves the site to a new hybrid connection with new keys, waits for the module, then deletes the old one", async (t) => {
  const env = await startRolloutEnv(t);
  await env.rollout.createSite({ siteId: "rot-1", profile: "single" });

  // A stand-in module on the real device SDK: reports the fingerprint of the key it was given.
  const saved = { ...process.env };
  Object.assign(process.env, env.hubEmulator.moduleEnvironment("rot-1", MODULE_ID));
  const client = await deviceSdk.ModuleClient.fromEnvironment(mqttTransport.Mqtt);
  process.env = saved;
  // Closed in the test body, before the emulators' after-hooks: a client whose hub vanished first
  // keeps retrying with timers that hold the test process open.
  await client.open();
  try {
    await rotateWithModule(env, client);
  } finally {
    await client.close();
  }
});

async function rotateWithModule(
  env: Awaited<ReturnType<typeof startRolloutEnv>>,
  client: InstanceType<typeof deviceSdk.ModuleClient>,
): Promise<void> {
  const before = {
    listen: await env.deps.relay.getRule("site-rot-1", "listen"),
    send: await env.deps.relay.getRule("site-rot-1", "send"),
  };
  const twin = await client.getTwin();
  twin.on("properties.desired", () => {
    const desired = twin.properties.desired as { $version: number; relay?: { sasKey?: string } };
    const key = desired.relay?.sasKey;
    if (!key) return;
    twin.properties.reported.update(
      {
        appliedDesiredVersion: desired.$version,
        relay: { status: "online", keyFingerprint: keyFingerprint(key) },
      },
      () => {},
    );
  });
  const names = async () =>
    (await env.deps.relay.list()).map((h) => h.name).filter((n) => n.includes("rot-1"));

  // A rotation moves the site to a new hybrid connection with new keys and deletes the old one.
  const result = await env.rollout.rotateKeys("rot-1");
  const after = {
    listen: await env.deps.relay.getRule("site-rot-1.k1", "listen"),
    send: await env.deps.relay.getRule("site-rot-1.k1", "send"),
  };
  assert.deepEqual(await names(), ["site-rot-1.k1"], "the old hybrid connection (and its keys) is deleted");
  assert.ok(after.listen && after.send);
  assert.notEqual(after.listen.primaryKey, before.listen?.primaryKey);
  assert.notEqual(after.listen.primaryKey, before.listen?.secondaryKey);
  const desired = (await env.deps.hub.getModuleTwin("rot-1", MODULE_ID))?.desired.relay as {
    sasKey: string;
    hybridConnection: string;
  };
  assert.equal(desired.hybridConnection, "site-rot-1.k1", "the twin names the new hybrid connection");
  assert.equal(desired.sasKey, after.listen.primaryKey, "twin carries the new key");
  assert.equal(result.listenKeyFingerprint, keyFingerprint(desired.sasKey));
  const row = await env.deps.ledger.getSite("rot-1");
  assert.equal(row?.hybridConnection, "site-rot-1.k1", "the ledger names the new hybrid connection");
  assert.equal(row?.sendKey, after.send.primaryKey, "ledger carries the new Send key");
  assert.equal(result.sendKeyFingerprint, keyFingerprint(after.send.primaryKey));

  // The next rotation moves on again; the site's status still finds it by its twin.
  await env.rollout.rotateKeys("rot-1");
  assert.deepEqual(await names(), ["site-rot-1.k2"]);
  const again = await env.deps.relay.getRule("site-rot-1.k2", "listen");
  // Re-applying the site (a mapping change) keeps the rotated hybrid connection and key.
  await env.rollout.reapplySite("rot-1");
  const desired3 = (await env.deps.hub.getModuleTwin("rot-1", MODULE_ID))?.desired.relay as {
    sasKey: string;
    hybridConnection: string;
  };
  assert.equal(desired3.hybridConnection, "site-rot-1.k2");
  assert.equal(desired3.sasKey, again?.primaryKey);
  assert.deepEqual(await names(), ["site-rot-1.k2"], "re-applying creates no site-rot-1 again");
  const report = await env.rollout.reconcile({ repair: false });
  assert.deepEqual(
    report.items.filter((i) => i.siteId === "rot-1" && i.kind === "orphan-hybrid-connection"),
    [],
    "the current generation is not an orphan",
  );
}

test("rotation with no module answering times out clearly and keeps the old key valid", async (t) => {
  const env = await startRolloutEnv(t, { overrides: { rotateTimeoutMs: 800, rotatePollMs: 100 } });
  await env.rollout.createSite({ siteId: "rot-2", profile: "single" });
  const before = await env.deps.relay.getRule("site-rot-2", "listen");
  await assert.rejects(env.rollout.rotateKeys("rot-2"), {
    code: "RF_ERR_ROLLOUT_ROTATE_TIMEOUT",
    message: /did not report the new Listen key/,
  });
  const after = await env.deps.relay.getRule("site-rot-2", "listen");
  assert.equal(after?.primaryKey, before?.primaryKey, "the key in use is not revoked");
  assert.deepEqual(
    (await env.deps.relay.list()).map((h) => h.name).filter((n) => n.includes("rot-2")),
    ["site-rot-2"],
    "the new hybrid connection of the failed rotation is removed again",
  );
  const desired = (await env.deps.hub.getModuleTwin("rot-2", MODULE_ID))?.desired.relay as {
    hybridConnection: string;
    sasKey: string;
  };
  assert.equal(desired.hybridConnection, "site-rot-2", "the twin points back at the old one");
  assert.equal(desired.sasKey, before?.primaryKey);
});
