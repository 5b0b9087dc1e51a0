/**
 * Section 1 of issue 13 (IoT Hub side): `relay-fleet deployment apply` creates the base at-scale
 * deployment from deployment.template.json with the target condition of lib/fleet-deployment.ts,
 * and the IoT Hub emulator applies it by target condition and priority. A device the rollout
 * onboards gets relayListener in its $edgeAgent desired properties; an untagged edge device does
 * not; an offboarded device moves to the retired deployment and loses the module. Re-applying is
 * a no-op; a new version replaces the old deployments. The base deployment tells the modules the
 * fleet's size, counted from the devices it targets, and their share of the hub's connection
 * quota (ADR 0027); the fleet status warns when the fleet outgrows it.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  applyFleetDeployments,
  buildFleetDeployments,
  buildSizedFleetDeployments,
} from "../../cli/deployment.ts";
import { createIotHubServiceClients } from "../../lib/azure/iothub-service.ts";
import { FLEET_TARGET_CONDITION } from "../../lib/fleet-deployment.ts";
import { REPO_ROOT, waitFor } from "../helpers/index.ts";
import { startRolloutEnv } from "../helpers/rollout-env.ts";

type Json = Record<string, unknown>;
/** The machine is shared: give the emulator time. */
const SLOW = { timeoutMs: 45_000, intervalMs: 200 };

test("the base deployment targets exactly the onboarded devices; offboarding removes the module", {
  timeout: 180_000,
}, async (t) => {
  const env = await startRolloutEnv(t);
  const { registry } = createIotHubServiceClients(env.hubEmulator.serviceConnectionString, {
    restPort: env.hubEmulator.httpsPort,
    ca: env.hubEmulator.caCert,
  });
  await env.rollout.createSite({ siteId: "dep-1" });
  // A redundant site: two edge devices, each tagged, each targeted (ADR 0014).
  await env.rollout.createSite({ siteId: "dep-2", deviceIds: ["dep-2", "dep-2.2"] });
  await registry.create({ deviceId: "not-ours", capabilities: { iotEdge: true } });

  const built = buildFleetDeployments(REPO_ROOT, "amd64", {});
  assert.equal(built[0]!.targetCondition, FLEET_TARGET_CONDITION);
  const first = await applyFleetDeployments(registry, built);
  assert.deepEqual(
    first.deployments.map((d) => d.action),
    ["created", "created"],
  );

  // The condition, as IoT Hub's query language evaluates it, selects exactly the onboarded devices.
  const q = registry.createQuery(`SELECT * FROM devices WHERE ${FLEET_TARGET_CONDITION}`);
  const rows = (await q.nextAsTwin()).result as unknown as Array<{ deviceId: string }>;
  assert.deepEqual(rows.map((r) => r.deviceId).sort(), ["dep-1", "dep-2", "dep-2.2"]);

  const agentModules = async (deviceId: string): Promise<Json | undefined> => {
    try {
      const twin = (await registry.getModuleTwin(deviceId, "$edgeAgent")).responseBody as unknown as {
        properties: { desired: Json };
      };
      return twin.properties.desired.modules as Json | undefined;
    } catch {
      return undefined;
    }
  };
  for (const d of ["dep-1", "dep-2", "dep-2.2"]) {
    const modules = await waitFor(async () => agentModules(d), `${d}'s $edgeAgent desired`, SLOW);
    const relay = modules.relayListener as { settings: { image: string } };
    assert.equal(relay.settings.image, "localhost:5000/relaylistener:0.1.0-amd64");
  }
  assert.equal((await agentModules("not-ours"))?.relayListener, undefined, "an untagged device gets nothing");
  // The device twin says which deployment is in force, as IoT Hub's `configurations` does.
  const configurationsOf = async (deviceId: string) =>
    ((await registry.getTwin(deviceId)).responseBody as unknown as { configurations?: Json }).configurations;
  assert.deepEqual(await configurationsOf("dep-1"), { [built[0]!.id]: { status: "applied" } });
  assert.equal(await configurationsOf("not-ours"), undefined);

  // Unchanged manifest: nothing to do.
  const again = await applyFleetDeployments(registry, built);
  assert.deepEqual(
    again.deployments.map((d) => d.action),
    ["unchanged", "unchanged"],
  );

  // Offboarding (the devices stay in IoT Hub) moves every device of the site to the retired deployment.
  await env.rollout.removeSite("dep-2");
  for (const d of ["dep-2", "dep-2.2"])
    await waitFor(
      async () => {
        const m = await agentModules(d);
        return m && m.relayListener === undefined ? true : undefined;
      },
      `${d} to lose relayListener`,
      SLOW,
    );
  assert.ok((await agentModules("dep-1"))?.relayListener, "dep-1 keeps the module");
  assert.deepEqual(await configurationsOf("dep-2"), { [built[1]!.id]: { status: "applied" } });
  assert.deepEqual(await configurationsOf("dep-2.2"), { [built[1]!.id]: { status: "applied" } });

  // A new version is a new deployment; the old ones go.
  const next = buildFleetDeployments(REPO_ROOT, "amd64", { CONTAINER_TAG: "ci2" });
  const upgraded = await applyFleetDeployments(registry, next);
  assert.deepEqual(upgraded.removed.sort(), built.map((d) => d.id).sort());
  const image = await waitFor(
    async () => {
      const m = await agentModules("dep-1");
      const img = (m?.relayListener as { settings: { image: string } } | undefined)?.settings.image;
      return img?.includes("ci2") ? img : undefined;
    },
    "dep-1 on the new version",
    SLOW,
  );
  assert.equal(image, "localhost:5000/relaylistener:0.1.0-ci2-amd64");
});

test("deployment apply sizes HUB_FLEET_SIZE from the devices it targets; the status warns when the fleet outgrows it", {
  timeout: 180_000,
}, async (t) => {
  const env = await startRolloutEnv(t);
  const { registry } = createIotHubServiceClients(env.hubEmulator.serviceConnectionString, {
    restPort: env.hubEmulator.httpsPort,
    ca: env.hubEmulator.caCert,
  });
  await env.rollout.createSite({ siteId: "size-1" });
  await env.rollout.createSite({ siteId: "size-2", deviceIds: ["size-2", "size-2.2"] });
  await registry.create({ deviceId: "size-other", capabilities: { iotEdge: true } });

  const sized = await buildSizedFleetDeployments(
    registry,
    REPO_ROOT,
    "amd64",
    {},
    { hubSku: "S1", hubUnits: 1 },
  );
  assert.equal(sized.devices, 3, "the devices the base deployment targets, counted by IoT Hub");
  assert.deepEqual(sized.sizing, { fleetSize: 500, connectsPerSecond: 95 });
  const base = sized.deployments[0]!;
  assert.match(base.id, /-f500-c95$/, "the figures are in the id: a new size is a new deployment");
  await applyFleetDeployments(registry, sized.deployments);

  // Every targeted device's edge agent is told both figures for relayListener.
  const relayEnv = async (deviceId: string) => {
    try {
      const twin = (await registry.getModuleTwin(deviceId, "$edgeAgent")).responseBody as unknown as {
        properties: {
          desired: { modules?: { relayListener?: { env?: Record<string, { value: string }> } } };
        };
      };
      return twin.properties.desired.modules?.relayListener?.env;
    } catch {
      return undefined;
    }
  };
  for (const d of ["size-1", "size-2", "size-2.2"]) {
    const e = await waitFor(() => relayEnv(d), `${d}'s relayListener env`, SLOW);
    assert.equal(e.HUB_FLEET_SIZE?.value, "500");
    assert.equal(e.HUB_CONNECTS_PER_SECOND?.value, "95");
  }

  // A few more devices stay within the step: the same deployment, nothing restarted.
  await env.rollout.createSite({ siteId: "size-3" });
  const again = await buildSizedFleetDeployments(registry, REPO_ROOT, "amd64", {}, { hubSku: "S1" });
  assert.equal(again.devices, 4);
  assert.deepEqual(
    (await applyFleetDeployments(registry, again.deployments)).deployments.map((d) => d.action),
    ["unchanged", "unchanged"],
  );
  // A bigger hub: its quota, a new deployment.
  const s3 = await buildSizedFleetDeployments(
    registry,
    REPO_ROOT,
    "amd64",
    {},
    { hubSku: "S3", hubUnits: 2 },
  );
  assert.deepEqual(s3.sizing, { fleetSize: 500, connectsPerSecond: 11_400 });
  assert.notEqual(s3.deployments[0]!.id, base.id);

  // Sized to the fleet: no warning.
  assert.deepEqual((await env.rollout.fleetView()).warnings, []);

  // A base deployment that tells 4 modules the fleet is 2: their reconnects would exceed the quota.
  const small = buildFleetDeployments(REPO_ROOT, "amd64", {}, { fleetSize: 2, connectsPerSecond: 95 });
  await applyFleetDeployments(registry, small);
  const view = await env.makeRollout().fleetView(); // a new instance: no cached deployment read
  assert.equal(view.sites.length, 4);
  assert.equal(view.warnings.length, 1, JSON.stringify(view.warnings));
  assert.match(view.warnings[0]!, /4 relay modules.*HUB_FLEET_SIZE=2.*quota/);
});
