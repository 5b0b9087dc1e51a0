import assert from "node:assert/strict";
import { test } from "node:test";
import { MODULE_ID, ONBOARD_STEPS, type Rollout } from "../../cloud/functions/src/rollout/index.ts";
import { evenPhase } from "../../lib/backoff.ts";
import { HUB_PHASE_COUNTER } from "../../lib/ledger/index.ts";
import { startRolloutEnv } from "../helpers/rollout-env.ts";

/** Everything a site owns across the three backends, read through the real SDK paths. */
async function siteState(rollout: Rollout, siteId: string, deviceId = siteId) {
  const { hub, relay, ledger } = rollout.deps;
  const hcs = (await relay.list()).filter((h) => h.name === `site-${siteId}`);
  const listen = await relay.getRule(`site-${siteId}`, "listen");
  const send = await relay.getRule(`site-${siteId}`, "send");
  const routes = await ledger.listRoutes({ siteId });
  const row = await ledger.getSite(siteId);
  const device = await hub.getDevice(deviceId);
  const twin = await hub.getModuleTwin(deviceId, MODULE_ID);
  const tags = await hub.getDeviceTags(deviceId);
  return { hcs, listen, send, routes, row, device, twin, tags };
}

test("onboarding creates every part once; a second run changes nothing", async (t) => {
  const env = await startRolloutEnv(t);
  const first = await env.rollout.createSite({ siteId: "plant-1" });
  assert.equal(first.created, true);
  const s = await siteState(env.rollout, "plant-1");
  assert.equal(s.device?.iotEdge, true);
  assert.equal(s.hcs.length, 1);
  assert.deepEqual(s.listen?.rights, ["Listen"]);
  assert.deepEqual(s.send?.rights, ["Send"]);
  assert.equal(s.routes.length, 2);
  assert.equal(new Set(s.routes.map((r) => r.port)).size, 2);
  assert.equal(s.row?.sendKey, s.send?.primaryKey);
  const relay = s.twin?.desired.relay as Record<string, unknown>;
  assert.equal(relay.hybridConnection, "site-plant-1");
  assert.equal(relay.sasKeyName, "listen");
  assert.equal(relay.sasKey, s.listen?.primaryKey);
  assert.equal(relay.endpoint, env.relayEmulator.url);
  assert.deepEqual(Object.keys(s.twin?.desired.mappings as object).sort(), ["ssh", "web"]);
  const tag = s.tags?.relayFleet as { siteId: string; profile: string; publicPorts: number[] };
  assert.equal(tag.siteId, "plant-1");
  assert.equal(tag.profile, "default");
  assert.deepEqual(
    tag.publicPorts,
    s.routes.map((r) => r.port).sort((a, b) => a - b),
  );
  assert.deepEqual(
    Object.fromEntries(Object.entries(first.site.mappings).map(([k, v]) => [k, v.publicPort])),
    Object.fromEntries(s.routes.map((r) => [r.portName, r.port])),
  );

  const version = s.twin?.desiredVersion;
  const again = await env.rollout.createSite({ siteId: "plant-1" });
  assert.equal(again.created, false);
  const s2 = await siteState(env.rollout, "plant-1");
  assert.equal(s2.twin?.desiredVersion, version, "no twin write when nothing changed");
  assert.deepEqual(s2.routes, s.routes);
  assert.equal(s2.listen?.primaryKey, s.listen?.primaryKey);

  await assert.rejects(
    env.rollout.createSite({ siteId: "plant-1", profile: "single" }),
    (err: { code?: string; status?: number }) =>
      err.code === "RF_ERR_ROLLOUT_SITE_EXISTS" && err.status === 409,
  );
});

test("every module gets a reconnect phase of its own from the fleet's sequence and keeps it on every re-apply", async (t) => {
  const env = await startRolloutEnv(t);
  const { hub, ledger } = env.rollout.deps;
  const phaseOf = async (deviceId: string) =>
    ((await hub.getModuleTwin(deviceId, MODULE_ID))?.desired.hubReconnect as { phase?: number } | undefined)
      ?.phase;
  const counter = () => ledger.takeOrdinals(HUB_PHASE_COUNTER, 0);

  // A single create takes one ordinal a device (one block for a site's devices).
  await env.rollout.createSite({ siteId: "ph-a" });
  await env.rollout.createSite({ siteId: "ph-b", deviceIds: ["ph-b1", "ph-b2"] });
  assert.equal(await phaseOf("ph-a"), evenPhase(0));
  assert.equal(await phaseOf("ph-b1"), evenPhase(1));
  assert.equal(await phaseOf("ph-b2"), evenPhase(2));
  // An onboarding job reserves one block for the devices its bulk call created, in file order.
  const job = env.rollout.onboarding.submit({
    sites: [{ siteId: "ph-c" }, { siteId: "ph-d" }, { siteId: "ph-e" }],
  });
  const done = await env.rollout.onboarding.settled(job.id);
  assert.equal(done?.counts.succeeded, 3);
  assert.deepEqual(await Promise.all(["ph-c", "ph-d", "ph-e"].map(phaseOf)), [3, 4, 5].map(evenPhase));
  assert.equal(await counter(), 6, "no ordinal taken twice or wasted");

  // Re-applied, created again, or in a job again: the phases stay, nothing is written or taken.
  const version = (await hub.getModuleTwin("ph-b2", MODULE_ID))?.desiredVersion;
  await env.rollout.reapplySite("ph-b");
  assert.equal((await env.rollout.createSite({ siteId: "ph-a" })).created, false);
  const again = env.rollout.onboarding.submit({ sites: [{ siteId: "ph-c" }] });
  assert.equal((await env.rollout.onboarding.settled(again.id))?.counts.succeeded, 1);
  assert.equal(await phaseOf("ph-a"), evenPhase(0));
  assert.equal(await phaseOf("ph-b2"), evenPhase(2));
  assert.equal(await phaseOf("ph-c"), evenPhase(3));
  assert.equal((await hub.getModuleTwin("ph-b2", MODULE_ID))?.desiredVersion, version, "no twin write");
  assert.equal(await counter(), 6);

  // A site from before phases (its twin has none) gets the next one when it is re-applied.
  await hub.patchModuleDesired("ph-a", MODULE_ID, { hubReconnect: null });
  assert.equal(await phaseOf("ph-a"), undefined);
  await env.rollout.reapplySite("ph-a");
  assert.equal(await phaseOf("ph-a"), evenPhase(6));
  assert.equal(await counter(), 7);
});

test("a crash before any step converges on retry without duplicates or orphans", async (t) => {
  const env = await startRolloutEnv(t);
  for (const step of ONBOARD_STEPS) {
    const siteId = `crash-${step}`;
    let armed = true;
    const crashing = env.makeRollout({
      beforeStep: (s) => {
        if (s === step && armed) {
          armed = false;
          throw new Error(`injected crash before ${s}`);
        }
      },
    });
    await assert.rejects(crashing.createSite({ siteId }), /injected crash/);
    // Another instance (a fresh function host) retries.
    const retried = await env.makeRollout().createSite({ siteId });
    assert.ok(retried.site.publicPorts.length === 2, `${step}: two public ports`);
    // And a third run changes nothing.
    await env.makeRollout().createSite({ siteId });
    const s = await siteState(env.rollout, siteId);
    assert.equal(s.hcs.length, 1, `${step}: one hybrid connection`);
    assert.equal(s.routes.length, 2, `${step}: no duplicate routes`);
    assert.deepEqual(s.routes.map((r) => r.portName).sort(), ["ssh", "web"]);
    assert.equal(
      (s.twin?.desired.relay as { sasKey?: string } | undefined)?.sasKey,
      s.listen?.primaryKey,
      `${step}: twin key`,
    );
    assert.equal(s.row?.sendKey, s.send?.primaryKey, `${step}: ledger send key`);
    assert.deepEqual(
      (s.tags?.relayFleet as { publicPorts: number[] } | undefined)?.publicPorts,
      retried.site.publicPorts,
    );
  }
  const all = await env.rollout.deps.ledger.listRoutes();
  assert.equal(all.length, ONBOARD_STEPS.length * 2, "no orphan route anywhere");
  assert.equal(new Set(all.map((r) => r.port)).size, all.length);
  const report = await env.rollout.reconcile({ repair: false });
  assert.deepEqual(
    report.items.filter((i) => i.kind !== "module"),
    [],
    "reconcile finds nothing rollout-owned out of place",
  );
});

test("mappings are added, changed, disabled and removed; offboarding leaves nothing behind", async (t) => {
  const env = await startRolloutEnv(t);
  await env.rollout.createSite({ siteId: "s1", profile: "single" });
  let site = await env.rollout.putMapping("s1", "rdp", { target: "10.0.0.5:3389" });
  assert.deepEqual(Object.keys(site.mappings).sort(), ["app", "rdp"]);
  const rdpPort = site.mappings.rdp?.publicPort;
  site = await env.rollout.putMapping("s1", "rdp", {
    target: "10.0.0.6:3389",
    enabled: false,
    allowCidrs: ["10.0.0.0/8"],
  });
  assert.equal(site.mappings.rdp?.publicPort, rdpPort, "a changed mapping keeps its port");
  const route = (await env.deps.ledger.listRoutes({ siteId: "s1" })).find((r) => r.portName === "rdp");
  assert.deepEqual(route?.allowCidrs, ["10.0.0.0/8"]);
  let twin = await env.deps.hub.getModuleTwin("s1", MODULE_ID);
  const rdp = (twin?.desired.mappings as Record<string, { target: string; enabled: boolean }> | undefined)
    ?.rdp;
  assert.equal(rdp?.target, "10.0.0.6:3389");
  assert.equal(rdp?.enabled, false);
  site = await env.rollout.deleteMapping("s1", "app");
  assert.deepEqual(Object.keys(site.mappings), ["rdp"]);
  twin = await env.deps.hub.getModuleTwin("s1", MODULE_ID);
  assert.equal(
    (twin?.desired.mappings as Record<string, unknown> | undefined)?.app,
    undefined,
    "removed from the twin",
  );
  assert.equal((await env.deps.ledger.listRoutes({ siteId: "s1" })).length, 1, "its port released");
  await assert.rejects(env.rollout.deleteMapping("s1", "app"), { code: "RF_ERR_ROLLOUT_MAPPING_NOT_FOUND" });
  await assert.rejects(env.rollout.putMapping("nope", "x", { target: "a:1" }), {
    code: "RF_ERR_ROLLOUT_SITE_NOT_FOUND",
  });

  const result = await env.rollout.removeSite("s1", { deleteDevice: true });
  assert.deepEqual(result.releasedPorts, [rdpPort]);
  assert.equal((await env.deps.relay.list()).length, 0, "hybrid connection gone");
  assert.equal((await env.deps.ledger.listRoutes()).length, 0, "no route left");
  assert.equal((await env.deps.ledger.listSites()).length, 0, "no site row left");
  assert.equal(await env.deps.hub.getDevice("s1"), undefined, "device deleted");
  await assert.rejects(env.rollout.removeSite("s1"), { code: "RF_ERR_ROLLOUT_SITE_NOT_FOUND" });

  // Keeping the device: the twin and tags are cleaned instead.
  await env.rollout.createSite({ siteId: "s2" });
  await env.rollout.removeSite("s2");
  const s = await siteState(env.rollout, "s2");
  assert.equal(s.device?.iotEdge, true);
  assert.deepEqual(
    Object.keys(s.twin?.desired ?? {}).filter((k) => !k.startsWith("$")),
    [],
    "desired properties cleaned",
  );
  assert.equal(s.tags?.relayFleet, undefined);
  assert.equal(s.hcs.length, 0);
});

test("sites list and fleet status in natural order: plant-2 before plant-10", async (t) => {
  const env = await startRolloutEnv(t);
  for (const siteId of ["plant-10", "plant-2", "plant-1"])
    await env.rollout.createSite({ siteId, profile: "single" });
  assert.deepEqual(
    (await env.rollout.listSites()).map((s) => s.siteId),
    ["plant-1", "plant-2", "plant-10"],
  );
  assert.deepEqual(
    (await env.rollout.fleetStatus()).map((s) => s.siteId),
    ["plant-1", "plant-2", "plant-10"],
  );
});
