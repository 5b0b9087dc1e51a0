/**
 * The figures the base deployment gives the relayListener modules (ADR 0027): HUB_FLEET_SIZE a
 * quarter above the devices, at least the configured floor, rounded up to 500; HUB_CONNECTS_PER_SECOND
 * 95 % of the hub's new-connection quota, from the same table the IoT Hub emulator enforces.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { fleetSizing } from "../../cli/deployment.ts";
import { deploymentFleetSize } from "../../lib/fleet-deployment.ts";
import { HUB_SKUS, relayConnectsPerSecond, sizedFleet } from "../../lib/hub-fleet-size.ts";
import { hubRates } from "../../sim/iothub-emulator/quotas.ts";

test("HUB_FLEET_SIZE: a quarter above the devices, at least the floor, in steps of 500", () => {
  assert.equal(sizedFleet(0), 500, "an empty fleet still gets one step");
  assert.equal(sizedFleet(3), 500);
  assert.equal(sizedFleet(400), 500, "400 × 1.25 = 500");
  assert.equal(sizedFleet(401), 1000, "401 × 1.25 = 502 → the next step");
  assert.equal(sizedFleet(10_000), 12_500);
  assert.equal(sizedFleet(3, 2_000), 2_000, "the configured floor wins over a small fleet");
  assert.equal(sizedFleet(3, 1_234), 1_500, "a floor is rounded up too");
  assert.equal(sizedFleet(2_000, 1_000), 2_500, "the fleet wins over a small floor");
  // The same size for every fleet within a step: re-applying after a few new devices changes nothing.
  const sizes = new Set(Array.from({ length: 400 }, (_, i) => sizedFleet(1_601 + i)));
  assert.deepEqual([...sizes], [2_500]);
});

test("HUB_CONNECTS_PER_SECOND: 95 % of the SKU's new-connection quota, the emulator's table", () => {
  assert.equal(relayConnectsPerSecond("S1", 1), 95);
  assert.equal(relayConnectsPerSecond("S1", 10), 114, "S1: the higher of 100 or 12 per unit");
  assert.equal(relayConnectsPerSecond("S2", 2), 228);
  assert.equal(relayConnectsPerSecond("S3", 1), 5_700);
  for (const sku of HUB_SKUS)
    for (const units of [1, 4, 10])
      assert.equal(
        relayConnectsPerSecond(sku, units),
        Math.floor(hubRates(sku, units).connect * 0.95),
        `${sku} × ${units}`,
      );
});

test("fleetSizing: the devices and the configuration, the SKU over a configured rate; bad values refused", () => {
  assert.deepEqual(fleetSizing({}, { devices: 10 }), { fleetSize: 500, connectsPerSecond: 95 });
  assert.deepEqual(fleetSizing({ HUB_FLEET_SIZE: "3000", HUB_CONNECTS_PER_SECOND: "50" }, { devices: 10 }), {
    fleetSize: 3_000,
    connectsPerSecond: 50,
  });
  assert.deepEqual(
    fleetSizing({ HUB_CONNECTS_PER_SECOND: "50", IOTHUB_SKU: "S3", IOTHUB_UNITS: "2" }, { devices: 5_000 }),
    { fleetSize: 6_500, connectsPerSecond: 11_400 },
  );
  assert.deepEqual(fleetSizing({ IOTHUB_SKU: "S3" }, { hubSku: "S2", hubUnits: 3, fleetSize: 700 }), {
    fleetSize: 1_000,
    connectsPerSecond: 342,
  });
  assert.throws(() => fleetSizing({ HUB_FLEET_SIZE: "many" }), /RF_ERR_DEPLOYMENT|HUB_FLEET_SIZE/);
  assert.throws(() => fleetSizing({}, { hubSku: "S9" }), /IOTHUB_SKU/);
});

test("deploymentFleetSize reads relayListener's HUB_FLEET_SIZE from a deployment's content", () => {
  const content = (env: Record<string, { value: unknown }> | undefined) => ({
    modulesContent: {
      $edgeAgent: { "properties.desired": { modules: { relayListener: { ...(env ? { env } : {}) } } } },
    },
  });
  assert.equal(deploymentFleetSize(content({ HUB_FLEET_SIZE: { value: "2500" } })), 2_500);
  assert.equal(deploymentFleetSize(content({ LOG_LEVEL: { value: "info" } })), null, "unset: the module's 1");
  assert.equal(deploymentFleetSize(content(undefined)), null);
  assert.equal(deploymentFleetSize(content({ HUB_FLEET_SIZE: { value: "0" } })), null);
  assert.equal(deploymentFleetSize({ modulesContent: { $edgeAgent: {} } }), undefined, "no relayListener");
});
