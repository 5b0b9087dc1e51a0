/**
 * Onboarding within IoT Hub's throttles (issue 18), at a scale a test can afford: against an IoT
 * Hub emulator enforcing S1 (100 identity-registry operations a minute), more sites than what is
 * left of one minute's budget covers are onboarded at once. The hub refuses some operations with
 * 429; the rollout waits and retries them, so no site fails and none is half-made.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createRegistryHub, MODULE_ID, withHubPacing } from "../../cloud/functions/src/rollout/index.ts";
import { createIotHubServiceClients } from "../../lib/azure/iothub-service.ts";
import { startRolloutEnv } from "../helpers/rollout-env.ts";

test("on a throttled S1 hub every site of a burst is onboarded whole; throttled operations are retried", async (t) => {
  const env = await startRolloutEnv(t, { hub: { sku: "S1", units: 1 } });
  const { registry } = createIotHubServiceClients(env.hubEmulator.serviceConnectionString, {
    restPort: env.hubEmulator.httpsPort,
    ca: env.hubEmulator.caCert,
  });
  let retries = 0;
  const rollout = env.makeRollout({
    hub: withHubPacing(createRegistryHub(registry), {
      backoff: { initialMs: 500, maxMs: 4_000, jitter: 0.5 },
      onThrottled: () => {
        retries++;
      },
    }),
  });
  // How many registry operations one onboarding takes, from the emulator's own count.
  const before = env.hubEmulator.quotas.counts.registry.allowed;
  await rollout.createSite({ siteId: "probe" });
  const perSite = env.hubEmulator.quotas.counts.registry.allowed - before;
  assert.ok(perSite > 0);
  // Spend what is left of the minute's budget with cheap reads (they count as registry
  // operations too), so the sites need about 5 s of refill: the test shows the waits without
  // onboarding 20 sites, and does so however slowly this machine reaches the sites' first call.
  const left = 100 - env.hubEmulator.quotas.counts.registry.allowed;
  const spare = Math.max(0, left);
  await Promise.all(Array.from({ length: spare }, () => registry.get("probe")));
  const sites = 2;
  const results = await Promise.allSettled(
    Array.from({ length: sites }, (_, i) => rollout.createSite({ siteId: `burst-${i}` })),
  );
  const failed = results.filter((r) => r.status === "rejected");
  assert.deepEqual(failed, [], "no site failed");
  assert.ok(env.hubEmulator.quotas.counts.registry.throttled > 0, "the hub did throttle");
  assert.ok(retries > 0, "the rollout waited and retried");
  for (let i = 0; i < sites; i++) {
    const deviceId = `burst-${i}`;
    assert.ok(
      await env.hubEmulator.hub.listDevices().find((d) => d.deviceId === deviceId),
      `${deviceId} exists`,
    );
    const routes = await env.deps.ledger.listRoutes({ siteId: deviceId });
    assert.equal(routes.length, 2, `${deviceId} has its routes`);
    assert.ok(env.hubEmulator.hub.module(deviceId, MODULE_ID), `${deviceId} has its module identity`);
  }
});
