/**
 * Evenly spread IoT Hub reconnect phases (issue 18, ADR 0031): the k-th module's phase is
 * `evenPhase(k)`, any prefix of which is evenly spread, so a fleet back from an outage sends the
 * budget's CONNECTs a second give or take two, where random phases (ADR 0027) gave a Binomial
 * spread. The rollout keeps a module's phase once given and takes ordinals only for modules
 * without one; the module takes the twin's phase and falls back to its own random one.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { reconnectPhases } from "../../cloud/functions/src/rollout/reconnect-phases.ts";
import { evenPhase, fleetSpreadPeriodMs, GOLDEN_RATIO_CONJUGATE } from "../../lib/backoff.ts";
import type { OrdinalCounters } from "../../lib/ledger/index.ts";
import { defaultConfig, validateDesired } from "../../lib/twin/index.ts";
import { HubConnectGate, HubReconnectSlots } from "../../modules/relayListener/src/hub-retry.ts";

/** Most and fewest of `phases` (× periodMs) in any window of `windowMs` on the circular period. */
function windowExtremes(phases: readonly number[], periodMs: number, windowMs: number) {
  const at = phases.map((p) => p * periodMs).sort((a, b) => a - b);
  const ring = [...at, ...at.map((x) => x + periodMs)];
  let most = 0;
  let fewest = Number.POSITIVE_INFINITY;
  let closed = 0; // first point at or past at[i] + windowMs
  for (let i = 0; i < at.length; i++) {
    const from = at[i] as number;
    while ((ring[closed] as number) < from + windowMs) closed++;
    // [from, from + w) starts on a point: the most; (from, from + w] starts just after it: the fewest.
    most = Math.max(most, closed - i);
    let open = closed;
    while ((ring[open] as number) <= from + windowMs) open++;
    fewest = Math.min(fewest, open - i - 1);
  }
  return { most, fewest };
}

test("evenPhase is frac(k / φ), in [0, 1), and refuses what is not an ordinal", () => {
  assert.equal(evenPhase(0), 0);
  assert.ok(Math.abs(evenPhase(1) - GOLDEN_RATIO_CONJUGATE) < 1e-15);
  assert.ok(Math.abs(evenPhase(2) - ((2 * GOLDEN_RATIO_CONJUGATE) % 1)) < 1e-15);
  for (const k of [3, 1_000, 123_456, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER]) {
    const p = evenPhase(k);
    assert.ok(p >= 0 && p < 1, `phase of ${k} in [0, 1): ${p}`);
  }
  for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY])
    assert.throws(() => evenPhase(bad), RangeError);
});

test("every prefix of the sequence up to 10,000 is evenly spread: any second of the period holds the mean + 2 at most (− 3 at least)", () => {
  const budget = 95;
  const phases = Array.from({ length: 10_000 }, (_, k) => evenPhase(k));
  // Fleet sizes from 100 to 10,000, some prime, some round; the fleet figure exactly N, and 25 %
  // above it rounded up to 500 as `deployment apply` sizes it (lib/hub-fleet-size.ts).
  const sizes = [100, 101, 250, 997, 1_000, 1_999, 2_000, 2_345, 4_099, 5_000, 7_919, 9_999, 10_000];
  for (const n of sizes) {
    for (const fleetSize of [n, Math.ceil((n * 1.25) / 500) * 500]) {
      const periodMs = fleetSpreadPeriodMs(fleetSize, budget, 1_000);
      const mean = (n * 1_000) / periodMs;
      const { most, fewest } = windowExtremes(phases.slice(0, n), periodMs, 1_000);
      assert.ok(
        most <= Math.ceil(mean) + 2,
        `N ${n}, fleet ${fleetSize}: busiest second ${most}, mean ${mean.toFixed(1)}`,
      );
      assert.ok(
        fewest >= Math.floor(mean) - 3,
        `N ${n}, fleet ${fleetSize}: quietest second ${fewest}, mean ${mean.toFixed(1)}`,
      );
    }
  }
});

test("modules that leave only thin the spread out: no second gets busier than the whole prefix's", () => {
  const periodMs = fleetSpreadPeriodMs(2_000, 95, 1_000);
  const all = Array.from({ length: 2_000 }, (_, k) => evenPhase(k));
  const bound = windowExtremes(all, periodMs, 1_000).most;
  // Every third module offboarded: their ordinals are not handed out again.
  const left = all.filter((_, k) => k % 3 !== 1);
  assert.ok(windowExtremes(left, periodMs, 1_000).most <= bound);
});

test("the rollout keeps a twin's phase, uses a reserved ordinal, and takes one block for the rest", async () => {
  const takes: number[] = [];
  let next = 40;
  const counters: OrdinalCounters = {
    async takeOrdinals(_name, count) {
      takes.push(count);
      const first = next;
      next += count;
      return first;
    },
  };
  const desired: Record<string, Record<string, unknown> | undefined> = {
    kept: { hubReconnect: { phase: 0.25 } },
    broken: { hubReconnect: { phase: 7 } }, // not a phase: a new one
    old: { relay: {} }, // a site from before phases
  };
  const phases = await reconnectPhases(
    counters,
    ["kept", "reserved", "broken", "old", "new"],
    (d) => desired[d] as never,
    new Map([["reserved", 7]]),
  );
  assert.deepEqual(takes, [3], "one block for the three devices without a phase");
  assert.equal(phases.get("kept"), 0.25);
  assert.equal(phases.get("reserved"), evenPhase(7));
  assert.equal(phases.get("broken"), evenPhase(40));
  assert.equal(phases.get("old"), evenPhase(41));
  assert.equal(phases.get("new"), evenPhase(42));

  // A re-apply: every twin has its phase, no ordinal taken.
  const again = await reconnectPhases(counters, ["a", "b"], () => ({ hubReconnect: { phase: 0.5 } }));
  assert.deepEqual(takes, [3]);
  assert.deepEqual([...again.values()], [0.5, 0.5]);
});

test("the twin's hubReconnect part: applied, a bad one keeps the last good, removed goes back to none", () => {
  const first = validateDesired({ hubReconnect: { phase: 0.375 } }, defaultConfig());
  assert.deepEqual(first.errors, []);
  assert.deepEqual(first.config.hubReconnect, { phase: 0.375 });
  for (const bad of [{ phase: 1 }, { phase: -0.1 }, { phase: "0.5" }, { phase: 0.5, spread: 2 }, 3]) {
    const r = validateDesired(
      { mappings: { rdp: { target: "10.0.0.5:3389" } }, hubReconnect: bad },
      first.config,
    );
    assert.deepEqual(r.config.hubReconnect, { phase: 0.375 }, `last good kept for ${JSON.stringify(bad)}`);
    assert.ok(r.config.mappings.rdp, "the rest applied");
    assert.ok(r.errors.length > 0 && r.errors.every((e) => e.path.startsWith("hubReconnect")));
    assert.match(r.errors[0]?.message ?? "", /last good value kept/);
  }
  assert.equal(validateDesired({}, first.config).config.hubReconnect, undefined);
});

test("an unknown top-level part (what a 1.0 module sees of hubReconnect) is reported and the rest applied", () => {
  const r = validateDesired(
    { schemaVersion: "1.9", mappings: { rdp: { target: "10.0.0.5:3389" } }, laterPart: { x: 1 } },
    defaultConfig(),
  );
  assert.ok(r.config.mappings.rdp);
  assert.deepEqual(r.errors, [{ path: "laterPart", message: "unknown field, ignored" }]);
});

test("the module's slots take the twin's phase, ignore a bad one, and fall back to their own", () => {
  let now = 0;
  const slots = new HubReconnectSlots(
    { fleetSize: 100, connectsPerSecond: 10, minPeriodMs: 1_000 },
    0.9,
    () => now,
  );
  assert.equal(slots.periodMs, 10_000);
  assert.equal(slots.phase, 0.9);
  assert.equal(slots.phaseOrigin, "random");
  const gate = new HubConnectGate(slots, () => now);
  gate.connected();
  slots.usePhase(0.5);
  assert.equal(slots.phase, 0.5);
  assert.equal(slots.phaseOrigin, "assigned");
  assert.equal(slots.delayToNextSlot(), 5_000, "the next slot at 0.5 × period");
  gate.lost();
  assert.equal(gate.delayBeforeConnect(), 5_000, "the gate follows the new phase");
  slots.usePhase(1.5);
  assert.equal(slots.phase, 0.5, "a phase outside [0, 1) is ignored");
  slots.usePhase(undefined);
  assert.equal(slots.phase, 0.9);
  assert.equal(slots.phaseOrigin, "random");
  now = 1;
  assert.equal(slots.delayToNextSlot(), 8_999);
});

test("the slots are on the wall clock the fleet shares: a slot falls at phase × period past the epoch, in every process", () => {
  const slots = new HubReconnectSlots({ fleetSize: 100, connectsPerSecond: 10, minPeriodMs: 1_000 }, 0.3);
  const gate = new HubConnectGate(slots);
  gate.connected();
  gate.lost();
  for (const delayOf of [() => slots.delayToNextSlot(), () => gate.delayBeforeConnect()]) {
    const before = Date.now();
    const delay = delayOf();
    const after = Date.now();
    // A process's own clock (performance.now()) would put the slot anywhere in the period.
    const offset = (before + delay) % slots.periodMs;
    assert.ok(
      Math.abs(offset - 0.3 * slots.periodMs) <= after - before + 1,
      `the slot lies ${offset} ms into its period, not at 3000`,
    );
  }
});
