/**
 * Issue 13, section 1: a module runs on a simulated device only because IoT Hub's deployment for
 * the device says so. The IoT Hub emulator applies the fleet's deployments (built by the same code
 * as `relay-fleet deployment apply`) by target condition; the edge-agent stand-in of each device
 * connects as `$edgeAgent` over MQTT, starts the relayListener process its desired properties
 * name, restarts it when it exits, stops it when the device stops matching (the rollout's
 * offboarding moves it to the retired deployment), and reports each module's runtime status.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { applyFleetDeployments, buildFleetDeployments } from "../../cli/deployment.ts";
import { FLEET_TAG, RETIRED_TAG } from "../../lib/fleet-deployment.ts";
import { EDGE_AGENT_MODULE_ID, EdgeAgent } from "../../sim/edge-agent.ts";
import { moduleImages } from "../../sim/module-images.ts";
import { REPO_ROOT, waitFor } from "../helpers/index.ts";
import { MODULE_ID, moduleEnv, type Site, startSite } from "./module-harness.ts";

type Json = Record<string, unknown>;
const SLOW = { timeoutMs: 60_000, intervalMs: 200 };

async function agentReported(site: Site, deviceId: string): Promise<Json> {
  const twin = (await site.svc.registry.getModuleTwin(deviceId, EDGE_AGENT_MODULE_ID))
    .responseBody as unknown as {
    properties: { reported: Json };
  };
  return twin.properties.reported;
}

function moduleReport(reported: Json): Json | undefined {
  return (reported.modules as Json | undefined)?.[MODULE_ID] as Json | undefined;
}

function startAgent(t: { after(fn: () => unknown): void }, site: Site, deviceId: string): EdgeAgent {
  const agent = new EdgeAgent({
    deviceId,
    connectionString: site.hub.connectionString(deviceId, EDGE_AGENT_MODULE_ID),
    ca: site.hub.caCert,
    resolveImage: moduleImages(),
    runtimeEnvironment: async (moduleId) => ({
      ...moduleEnv(t, { ...site, deviceId }, { LOG_LEVEL: "info" }, moduleId),
    }),
    resyncMs: 1_000,
  });
  t.after(() => agent.stop());
  return agent;
}

test("a matching device gets the module, a module that exits is restarted, a device that stops matching loses it", {
  timeout: 240_000,
}, async (t) => {
  const site = await startSite(t, "agent-1");
  const { registry } = site.svc;
  await registry.updateTwin(site.deviceId, { tags: { [FLEET_TAG]: { siteId: "agent-1" } } }, "*");
  // An edge device the fleet never onboarded: no deployment targets it.
  await registry.create({ deviceId: "agent-other", capabilities: { iotEdge: true } });
  await applyFleetDeployments(registry, buildFleetDeployments(REPO_ROOT, "amd64", {}));

  const agent = startAgent(t, site, site.deviceId);
  const other = startAgent(t, site, "agent-other");
  await Promise.all([agent.start(), other.start()]);

  // The device the deployment targets runs the module and says so in $edgeAgent's reported properties.
  await agent.waitRunning(MODULE_ID, 1, 60_000);
  const first = agent.processes(MODULE_ID)[0];
  assert.ok(first?.child.pid);
  const running = await waitFor(
    async () => {
      const m = moduleReport(await agentReported(site, site.deviceId));
      return m?.runtimeStatus === "running" ? m : undefined;
    },
    "$edgeAgent to report relayListener running",
    SLOW,
  );
  assert.match(String(running.settings && (running.settings as Json).image), /relaylistener:0\.1\.0-amd64$/);
  assert.equal(running.restartPolicy, "always");
  assert.notEqual(running.lastStartTimeUtc, "0001-01-01T00:00:00Z");
  const reported = await agentReported(site, site.deviceId);
  assert.deepEqual(reported.lastDesiredStatus, { code: 200, description: "" });
  assert.equal(typeof reported.lastDesiredVersion, "number");
  // The module is the real relayListener under its own identity: it reports into its module twin.
  await waitFor(
    async () => {
      const twin = (await registry.getModuleTwin(site.deviceId, MODULE_ID)).responseBody as unknown as {
        properties: { reported: Json };
      };
      return Object.keys(twin.properties.reported).some((k) => !k.startsWith("$")) ? true : undefined;
    },
    "relayListener to report into its module twin",
    SLOW,
  );

  // The other device's agent runs nothing.
  await other.firstReconcile;
  assert.deepEqual(other.processes(MODULE_ID), []);
  assert.equal(moduleReport(await agentReported(site, "agent-other")), undefined);

  // A module that exits is restarted (restartPolicy: always), and the restart is reported.
  first.child.kill("SIGKILL");
  assert.equal(await first.exited, "SIGKILL");
  await agent.waitRunning(MODULE_ID, 1, 60_000);
  const second = agent.processes(MODULE_ID)[0];
  assert.ok(second && second.child.pid !== first.child.pid, "a new process");
  const restarted = await waitFor(
    async () => {
      const m = moduleReport(await agentReported(site, site.deviceId));
      return m?.runtimeStatus === "running" && m.restartCount === 1 ? m : undefined;
    },
    "the restart in the reported properties",
    SLOW,
  );
  assert.equal(restarted.exitCode, 137);
  assert.notEqual(restarted.lastExitTimeUtc, "0001-01-01T00:00:00Z");

  // Offboarded (the rollout's tags: relayFleet gone, relayFleetRetired set): the retired
  // deployment applies, which has no relayListener, and the agent stops the module.
  await registry.updateTwin(site.deviceId, { tags: { [FLEET_TAG]: null, [RETIRED_TAG]: true } }, "*");
  assert.equal(await second.exited, 0, "stopped gracefully by the agent");
  await waitFor(
    async () => (moduleReport(await agentReported(site, site.deviceId)) === undefined ? true : undefined),
    "relayListener gone from $edgeAgent's reported modules",
    SLOW,
  );
  assert.deepEqual(agent.processes(MODULE_ID), []);
});
