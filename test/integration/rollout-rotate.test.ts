import assert from "node:assert/strict";
import { test } from "node:test";
import deviceSdk from "azure-iot-device";
import mqttTransport from "azure-iot-device-mqtt";
import { MODULE_ID } from "../../cloud/functions/src/rollout/index.ts";
import { keyFingerprint } from "../../lib/hyco/sas.ts";
import { startRolloutEnv } from "../helpers/rollout-env.ts";

test("rotate-keys hands the module a new key, waits for it, then revokes the old ones", async (t) => {
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

  const result = await env.rollout.rotateKeys("rot-1");
  const after = {
    listen: await env.deps.relay.getRule("site-rot-1", "listen"),
    send: await env.deps.relay.getRule("site-rot-1", "send"),
  };
  assert.notEqual(after.listen?.primaryKey, before.listen?.primaryKey, "old Listen key revoked");
  assert.notEqual(after.listen?.secondaryKey, before.listen?.secondaryKey, "new Listen key issued");
  const desired = (await env.deps.hub.getModuleTwin("rot-1", MODULE_ID))?.desired.relay as { sasKey: string };
  assert.equal(desired.sasKey, after.listen?.secondaryKey, "twin carries the new key");
  assert.equal(result.listenKeyFingerprint, keyFingerprint(desired.sasKey));
  const row = await env.deps.ledger.getSite("rot-1");
  assert.equal(row?.sendKey, after.send?.secondaryKey, "ledger carries the new Send key");
  assert.notEqual(after.send?.primaryKey, before.send?.primaryKey, "old Send key revoked");

  // A second rotation goes back to the primary slot.
  await env.rollout.rotateKeys("rot-1");
  const again = await env.deps.relay.getRule("site-rot-1", "listen");
  const desired2 = (await env.deps.hub.getModuleTwin("rot-1", MODULE_ID))?.desired.relay as {
    sasKey: string;
  };
  assert.equal(desired2.sasKey, again?.primaryKey);
  // Re-applying the site keeps the rotated keys.
  await env.rollout.reapplySite("rot-1");
  const desired3 = (await env.deps.hub.getModuleTwin("rot-1", MODULE_ID))?.desired.relay as {
    sasKey: string;
  };
  assert.equal(desired3.sasKey, again?.primaryKey);
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
});
