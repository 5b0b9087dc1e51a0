/**
 * A site of several edge devices (ADR 0014) against the real emulators: every device gets its own
 * module identity and twin with the site's desired properties and its own fleet tag (so the base
 * deployment's target condition matches it), devices join through the API and through their
 * DeviceCreated event, leave again, rotation moves all of them, status and reconcile report per
 * device, and offboarding removes them all. Refused changes leave nothing behind.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import deviceSdk from "azure-iot-device";
import mqttTransport from "azure-iot-device-mqtt";
import { MODULE_ID } from "../../cloud/functions/src/rollout/index.ts";
import { createIotHubServiceClients } from "../../lib/azure/iothub-service.ts";
import { FLEET_TARGET_CONDITION, RETIRED_TAG } from "../../lib/fleet-deployment.ts";
import { keyFingerprint } from "../../lib/hyco/sas.ts";
import { type RolloutEnv, startRolloutEnv } from "../helpers/rollout-env.ts";

type Json = Record<string, unknown>;

/** Device ids IoT Hub returns for the base deployment's own target condition. */
async function targeted(env: RolloutEnv): Promise<string[]> {
  const { registry } = createIotHubServiceClients(env.hubEmulator.serviceConnectionString, {
    restPort: env.hubEmulator.httpsPort,
    ca: env.hubEmulator.caCert,
  });
  const query = registry.createQuery(`SELECT * FROM devices WHERE ${FLEET_TARGET_CONDITION}`, 100);
  const { result } = await query.next();
  return (result as Array<{ deviceId: string }>).map((d) => d.deviceId).sort();
}

/** The site's desired properties on a device: every part but the module's own reconnect phase. */
async function desiredOf(env: RolloutEnv, deviceId: string): Promise<Json | undefined> {
  const twin = await env.deps.hub.getModuleTwin(deviceId, MODULE_ID);
  if (!twin) return undefined;
  const { $version: _v, $metadata: _m, hubReconnect: _h, ...rest } = twin.desired;
  return rest;
}

const phaseOf = async (env: RolloutEnv, deviceId: string) =>
  ((await env.deps.hub.getModuleTwin(deviceId, MODULE_ID))?.desired.hubReconnect as Json | undefined)?.phase;

const tagOf = async (env: RolloutEnv, deviceId: string) =>
  (await env.deps.hub.getDeviceTags(deviceId))?.relayFleet as Json | undefined;

test("a site of two devices: each its own module twin and tag, one hybrid connection; devices join and leave; nothing left on a refusal", async (t) => {
  const env = await startRolloutEnv(t);
  const created = await env.rollout.createSite({ siteId: "red-1", deviceIds: ["red-1a", "red-1b"] });
  assert.equal(created.created, true);
  assert.deepEqual(
    created.site.devices.map((d) => d.deviceId),
    ["red-1a", "red-1b"],
  );

  // Each device: an IoT Edge device with its own relayListener identity and the same desired twin.
  for (const d of ["red-1a", "red-1b"]) {
    assert.equal((await env.deps.hub.getDevice(d))?.iotEdge, true, `${d} is an IoT Edge device`);
    assert.equal((await tagOf(env, d))?.siteId, "red-1", `${d} is tagged with its site`);
  }
  const a = await desiredOf(env, "red-1a");
  assert.ok(a?.relay);
  assert.deepEqual(await desiredOf(env, "red-1b"), a, "both devices get the site's desired properties");
  const phases = [await phaseOf(env, "red-1a"), await phaseOf(env, "red-1b")];
  assert.ok(
    phases.every((p) => typeof p === "number") && phases[0] !== phases[1],
    "each module its own phase",
  );
  assert.equal((a.relay as Json).hybridConnection, "site-red-1", "one hybrid connection for the site");
  assert.deepEqual(
    (await env.deps.relay.list()).map((h) => h.name).filter((n) => n.includes("red-1")),
    ["site-red-1"],
  );
  const ports = (await tagOf(env, "red-1a"))?.publicPorts;
  assert.deepEqual((await tagOf(env, "red-1b"))?.publicPorts, ports);
  assert.deepEqual(await targeted(env), ["red-1a", "red-1b"], "the base deployment targets both devices");

  // Re-posting the site with one of its devices is the same site: 200, nothing rewritten.
  const version = (await env.deps.hub.getModuleTwin("red-1b", MODULE_ID))?.desiredVersion;
  const again = await env.rollout.createSite({ siteId: "red-1", deviceId: "red-1a" });
  assert.equal(again.created, false);
  assert.equal(again.site.devices.length, 2, "re-posting keeps every device");
  assert.equal((await env.deps.hub.getModuleTwin("red-1b", MODULE_ID))?.desiredVersion, version);

  // A third device joins through the API (named by the rollout when no id is given).
  const joined = await env.rollout.addDevice("red-1", {});
  assert.equal(joined.created, true);
  assert.deepEqual(
    joined.site.devices.map((d) => d.deviceId),
    ["red-1a", "red-1b", "red-1.2"],
  );
  assert.deepEqual(await desiredOf(env, "red-1.2"), a);
  assert.equal((await tagOf(env, "red-1.2"))?.siteId, "red-1");
  const twice = await env.rollout.addDevice("red-1", { deviceId: "red-1.2" });
  assert.equal(twice.created, false, "a device that belongs to the site already: 200");

  // Refusals: a device of another site, a bad body, an unknown site, a full site.
  await env.rollout.createSite({ siteId: "other", profile: "single" });
  await assert.rejects(env.rollout.addDevice("red-1", { deviceId: "other" }), {
    code: "RF_ERR_ROLLOUT_DEVICE_IN_OTHER_SITE",
    status: 409,
  });
  assert.equal((await tagOf(env, "other"))?.siteId, "other", "the other site's device is untouched");
  await assert.rejects(env.rollout.addDevice("red-1", { deviceId: "bad id" }), {
    code: "RF_ERR_ROLLOUT_INVALID",
    status: 400,
  });
  await assert.rejects(env.rollout.addDevice("red-1", { deviceId: "x", extra: 1 }), { status: 400 });
  await assert.rejects(env.rollout.addDevice("nope", { deviceId: "nope-a" }), {
    code: "RF_ERR_ROLLOUT_SITE_NOT_FOUND",
  });
  assert.equal(await env.deps.hub.getDevice("nope-a"), undefined, "no device created for an unknown site");
  await assert.rejects(
    env.rollout.createSite({ siteId: "dup", deviceIds: ["d1", "d1"] }),
    (err: { issues?: Array<{ message: string }> }) =>
      err.issues?.some((i) => /listed twice/.test(i.message)) === true,
  );
  await assert.rejects(env.rollout.createSite({ siteId: "steal", deviceIds: ["steal-a", "red-1b"] }), {
    code: "RF_ERR_ROLLOUT_DEVICE_IN_OTHER_SITE",
  });
  assert.equal(await env.deps.ledger.getSite("steal"), undefined, "a refused site leaves no row");
  assert.equal(await env.deps.hub.getDevice("steal-a"), undefined, "…and no device");
  for (let i = 3; i <= 7; i++) await env.rollout.addDevice("red-1", {});
  await assert.rejects(env.rollout.addDevice("red-1", { deviceId: "ninth" }), {
    code: "RF_ERR_ROLLOUT_SITE_FULL",
    status: 409,
  });
  assert.equal(await env.deps.hub.getDevice("ninth"), undefined, "nothing of a refused device");
  for (let i = 3; i <= 7; i++) await env.rollout.removeDevice("red-1", `red-1.${i}`, { deleteDevice: true });

  // A device leaves: its twin is cleaned, its tag retired (the retired deployment removes the
  // module); the site keeps its others. The last device cannot leave: the site is removed instead.
  const left = await env.rollout.removeDevice("red-1", "red-1b");
  assert.deepEqual(
    left.devices.map((d) => d.deviceId),
    ["red-1a", "red-1.2"],
  );
  assert.equal((await desiredOf(env, "red-1b"))?.relay, undefined, "the leaving module stops listening");
  const tags = await env.deps.hub.getDeviceTags("red-1b");
  assert.equal(tags?.relayFleet, undefined);
  assert.equal(tags?.[RETIRED_TAG], true);
  assert.ok((await desiredOf(env, "red-1a"))?.relay, "the staying device keeps its settings");
  assert.deepEqual(await targeted(env), ["other", "red-1.2", "red-1a"]);
  await assert.rejects(env.rollout.removeDevice("red-1", "red-1b"), {
    code: "RF_ERR_ROLLOUT_DEVICE_NOT_FOUND",
    status: 404,
  });
  await env.rollout.removeDevice("red-1", "red-1.2", { deleteDevice: true });
  assert.equal(await env.deps.hub.getDevice("red-1.2"), undefined, "--delete-device deletes the identity");
  await assert.rejects(env.rollout.removeDevice("red-1", "red-1a"), {
    code: "RF_ERR_ROLLOUT_LAST_DEVICE",
    status: 409,
  });

  // Offboarding removes every device of the site.
  await env.rollout.addDevice("red-1", { deviceId: "red-1c" });
  const off = await env.rollout.removeSite("red-1", { deleteDevice: true });
  assert.deepEqual(off.devices, ["red-1a", "red-1c"]);
  assert.equal(await env.deps.hub.getDevice("red-1a"), undefined);
  assert.equal(await env.deps.hub.getDevice("red-1c"), undefined);
  assert.deepEqual(await targeted(env), ["other"]);
});

test("device events: a DeviceCreated with an existing site's tag joins it; DeviceDeleted of one device keeps the site, of the last offboards it", async (t) => {
  const env = await startRolloutEnv(t);
  const created = (deviceId: string, siteId: string) => ({
    eventType: "Microsoft.Devices.DeviceCreated",
    data: { deviceId, twin: { deviceId, tags: { relayFleet: { siteId, profile: "single" } } } },
  });
  const deleted = (deviceId: string, siteId: string) => ({
    eventType: "Microsoft.Devices.DeviceDeleted",
    data: { deviceId, twin: { deviceId, tags: { relayFleet: { siteId } } } },
  });
  assert.deepEqual(await env.rollout.handleDeviceEvent(created("ev-a", "ev")), {
    action: "onboarded",
    siteId: "ev",
  });
  assert.deepEqual(await env.rollout.handleDeviceEvent(created("ev-b", "ev")), {
    action: "joined",
    siteId: "ev",
  });
  const site = await env.rollout.getSite("ev");
  assert.deepEqual(
    site.devices.map((d) => d.deviceId),
    ["ev-a", "ev-b"],
  );
  assert.deepEqual(await desiredOf(env, "ev-b"), await desiredOf(env, "ev-a"));

  await env.deps.hub.deleteDevice("ev-a");
  assert.deepEqual(await env.rollout.handleDeviceEvent(deleted("ev-a", "ev")), {
    action: "device-removed",
    siteId: "ev",
  });
  assert.deepEqual(
    (await env.rollout.getSite("ev")).devices.map((d) => d.deviceId),
    ["ev-b"],
  );
  assert.ok(await env.deps.relay.getRule("site-ev", "listen"), "the site stays");
  await env.deps.hub.deleteDevice("ev-b");
  assert.deepEqual(await env.rollout.handleDeviceEvent(deleted("ev-b", "ev")), {
    action: "offboarded",
    siteId: "ev",
  });
  assert.equal(await env.deps.ledger.getSite("ev"), undefined);
});

/** A stand-in module on the real device SDK that reports the key it was given (as the module does). */
async function standInModule(env: RolloutEnv, deviceId: string) {
  const saved = { ...process.env };
  Object.assign(process.env, env.hubEmulator.moduleEnvironment(deviceId, MODULE_ID));
  const client = await deviceSdk.ModuleClient.fromEnvironment(mqttTransport.Mqtt);
  process.env = saved;
  await client.open();
  const twin = await client.getTwin();
  const report = () => {
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
  };
  twin.on("properties.desired", report);
  return client;
}

test("rotation moves every connected device and does not wait for an offline one; status and reconcile report per device", async (t) => {
  const env = await startRolloutEnv(t, { overrides: { rotateTimeoutMs: 10_000 } });
  await env.rollout.createSite({ siteId: "rot", profile: "single", deviceIds: ["rot-a", "rot-b", "rot-c"] });
  // Devices a and b run a module; c is offline (never connected).
  const clients = [await standInModule(env, "rot-a"), await standInModule(env, "rot-b")];
  try {
    const result = await env.rollout.rotateKeys("rot");
    assert.deepEqual(result.devices, [
      { deviceId: "rot-a", state: "moved" },
      { deviceId: "rot-b", state: "moved" },
      { deviceId: "rot-c", state: "offline" },
    ]);
    const key = await env.deps.relay.getRule("site-rot.k1", "listen");
    for (const d of ["rot-a", "rot-b", "rot-c"]) {
      const relay = (await desiredOf(env, d))?.relay as Json;
      assert.equal(relay.hybridConnection, "site-rot.k1", `${d} is given the new hybrid connection`);
      assert.equal(relay.sasKey, key?.primaryKey, `${d} is given the new key`);
    }
    assert.deepEqual(
      (await env.deps.relay.list()).map((h) => h.name).filter((n) => n.includes("rot")),
      ["site-rot.k1"],
    );

    // Status: a row per device, each from its own twin.
    const rows = (await env.rollout.fleetStatus()).filter((s) => s.siteId === "rot");
    assert.deepEqual(
      rows.map((r) => [r.deviceId, r.listenerStatus]),
      [
        ["rot-a", "online"],
        ["rot-b", "online"],
        ["rot-c", "unknown"],
      ],
    );
    assert.ok(rows[2]?.drift.includes("never reported"));
    const site = await env.rollout.getSite("rot");
    assert.deepEqual(
      site.devices.map((d) => d.module?.listenerStatus),
      ["online", "online", "unknown"],
    );

    // Reconcile finds one device's edited twin by device, and repairs it; it reports (never
    // joins by itself) a device tagged for the site that is none of its devices, and a tag that
    // names no site.
    await env.deps.hub.patchModuleDesired("rot-b", MODULE_ID, {
      mappings: { app: { target: "10.9.9.9:1" } },
    });
    env.hubEmulator.provisionDevice("stray", { iotEdge: true, tags: { relayFleet: { siteId: "rot" } } });
    env.hubEmulator.provisionDevice("lost", { iotEdge: true, tags: { relayFleet: { siteId: "ghost" } } });
    const report = await env.rollout.reconcile();
    const strays = report.items.filter((i) => i.kind === "device-not-in-site");
    assert.deepEqual(strays.map((i) => [i.siteId, i.deviceId]).sort(), [
      ["ghost", "lost"],
      ["rot", "stray"],
    ]);
    assert.match(
      strays.find((i) => i.deviceId === "stray")?.detail ?? "",
      /relay-fleet devices add rot stray/,
    );
    assert.equal(
      (await env.rollout.getSite("rot")).devices.some((d) => d.deviceId === "stray"),
      false,
      "reported, not joined",
    );
    const item = report.items.find((i) => i.kind === "desired-mismatch");
    assert.equal(item?.deviceId, "rot-b");
    assert.equal(item?.repaired, true);
    assert.deepEqual(await desiredOf(env, "rot-b"), await desiredOf(env, "rot-a"));
    assert.ok(
      report.items.some(
        (i) => i.kind === "module" && i.deviceId === "rot-c" && /rot-c: never reported/.test(i.detail),
      ),
    );
  } finally {
    for (const c of clients) await c.close();
  }
});
