/**
 * Fleet-sized IoT Hub reconnects (issue 18, ADR 0027): each module retries once per
 * `fleetSize / connectsPerSecond` on its own phase, so a fleet that lost the hub together
 * arrives at the hub at the budget's rate and is back within one period.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { fleetSpreadPeriodMs, nextSlotDelay } from "../../lib/backoff.ts";
import { HubConnectGate, HubReconnectSlots } from "../../modules/relayListener/src/hub-retry.ts";
import { readSettings } from "../../modules/relayListener/src/settings.ts";

test("the spread period is fleet size over the connection budget, never below the floor", () => {
  assert.equal(fleetSpreadPeriodMs(10_000, 95, 5_000), 105_264);
  assert.equal(fleetSpreadPeriodMs(10, 95, 5_000), 5_000);
  assert.throws(() => fleetSpreadPeriodMs(0, 95, 5_000), RangeError);
  assert.throws(() => fleetSpreadPeriodMs(10, 0, 5_000), RangeError);
});

test("nextSlotDelay lands on the loop's slots, at least the gap away, however early the timer fired", () => {
  // period 1000, phase 0.25: slots at 250, 1250, 2250 …
  assert.equal(nextSlotDelay(1_000, 0.25, 500, 0), 1_250);
  assert.equal(nextSlotDelay(1_000, 0.25, 500, 1_249), 1_001, "a timer 1 ms early does not reuse the slot");
  assert.equal(nextSlotDelay(1_000, 0.25, 500, 1_250), 1_000);
  assert.equal(nextSlotDelay(1_000, 0.25, 500, 1_700), 550);
  assert.equal(nextSlotDelay(1_000, 0.25, 500, 1_800), 1_450, "a slot under the gap is skipped");
});

test("a fleet that lost the hub together arrives at the budget's rate and is back within one period", () => {
  const fleet = 2_000;
  const budget = 50;
  let now = 10_000;
  const modules = Array.from(
    { length: fleet },
    () =>
      new HubReconnectSlots(
        { fleetSize: fleet, connectsPerSecond: budget, minPeriodMs: 1_000 },
        Math.random() * 0.999_999,
        () => now,
      ),
  );
  // The hub drops everyone at t = 10 s; each module's first retry is the delay the SDK asks for.
  const arrivals = modules.map((m) => now + m.nextRetryTimeout(1, false));
  const period = modules[0]?.periodMs ?? 0;
  assert.equal(period, 40_000);
  const latest = Math.max(...arrivals);
  assert.ok(latest - now <= period + 1_000, `all back within one period and the gap (${latest - now} ms)`);
  // Per-second counts follow the budget: a Binomial(2000, 1/40) per second, mean 50.
  const perSecond = new Map<number, number>();
  for (const at of arrivals)
    perSecond.set(Math.floor(at / 1_000), (perSecond.get(Math.floor(at / 1_000)) ?? 0) + 1);
  const max = Math.max(...perSecond.values());
  assert.ok(max <= budget * 1.6, `no second far above the budget (max ${max})`);
  assert.ok(perSecond.size >= 39, `spread over the whole period (${perSecond.size} seconds)`);
  // A failed attempt waits for the module's next slot, one period later.
  now = arrivals[0] ?? 0;
  assert.equal(modules[0]?.nextRetryTimeout(2, true), period, "one period later");
});

test("only the errors the SDK's default filter retries are retried", () => {
  const slots = new HubReconnectSlots({ fleetSize: 1, connectsPerSecond: 1, minPeriodMs: 1_000 });
  const named = (name: string) => Object.assign(new Error(name), { name });
  assert.equal(slots.shouldRetry(named("NotConnectedError")), true);
  assert.equal(slots.shouldRetry(named("ThrottlingError")), true);
  assert.equal(slots.shouldRetry(named("UnauthorizedError")), false);
});

test("the module reads the fleet's size and budget from its environment, with S1-sized defaults", () => {
  const env = { RELAY_ALLOWLIST_FILE: "/dev/null" };
  assert.deepEqual(readSettings(env).hubReconnect, {
    fleetSize: 1,
    connectsPerSecond: 95,
    minPeriodMs: 5_000,
  });
  assert.deepEqual(
    readSettings({
      ...env,
      HUB_FLEET_SIZE: "10000",
      HUB_CONNECTS_PER_SECOND: "900",
      HUB_RETRY_MIN_MS: "2000",
    }).hubReconnect,
    { fleetSize: 10_000, connectsPerSecond: 900, minPeriodMs: 2_000 },
  );
  assert.throws(() => readSettings({ ...env, HUB_FLEET_SIZE: "0" }), /HUB_FLEET_SIZE/);
});

test("the connect gate holds every attempt after a loss to the module's next slot, the first open never", () => {
  let now = 0;
  // period 10 s, phase 0.5: slots at 5 s, 15 s, 25 s …
  const slots = new HubReconnectSlots(
    { fleetSize: 10, connectsPerSecond: 1, minPeriodMs: 1_000 },
    0.5,
    () => now,
  );
  const gate = new HubConnectGate(slots, () => now);
  gate.lost();
  assert.equal(gate.delayBeforeConnect(), 0, "before the first connection: the first open's own backoff");
  gate.lost();
  now = 1_000;
  assert.equal(gate.delayBeforeConnect(), 0, "a failed first open is not held either");
  gate.connected();
  assert.equal(gate.delayBeforeConnect(), 0, "connected: nothing to hold");
  now = 14_500;
  gate.lost(); // the hub dropped the connection
  assert.equal(gate.delayBeforeConnect(), 10_500, "the SDK's immediate attempt waits: 15 s is under the gap");
  now = 24_000;
  assert.equal(gate.delayBeforeConnect(), 1_000, "a retry timer early for its slot waits for it");
  now = 25_300;
  assert.equal(gate.delayBeforeConnect(), 0, "on (or late for) the slot: go");
  gate.lost(); // that attempt was refused
  assert.equal(gate.delayBeforeConnect(), 9_700, "the next one a period later");
  now = 35_000;
  gate.connected();
  assert.equal(gate.delayBeforeConnect(), 0);
});
