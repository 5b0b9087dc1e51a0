import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  Backoff,
  backoffCeiling,
  backoffDelay,
  phasesApart,
  RetrySlots,
  sleep,
  spreadAbove,
} from "../../lib/backoff.ts";
import { RETRY_PERIOD_MS } from "../../lib/hyco/constants.ts";

/** A small seeded generator (mulberry32), so statistical cases are repeatable. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/**
 * Attempt times of one relay listener channel over `windowMs` after the relay went away at 0:
 * each attempt fails after `failMs()` (a refused connect in ms, a hung handshake in seconds) and
 * its timer may fire a little early or late, as timers on a loaded machine do.
 */
function channelAttempts(
  phase: number,
  windowMs: number,
  failMs: () => number,
  jitterMs: () => number,
): number[] {
  let clock = 0;
  const slots = new RetrySlots(RETRY_PERIOD_MS, phase, () => clock);
  const times: number[] = [];
  let at = slots.next(); // the channel dropped at 0
  while (at < windowMs) {
    times.push(at);
    clock = at + failMs();
    at = clock + slots.next() + jitterMs();
  }
  return times;
}

describe("backoff", () => {
  it("doubles the ceiling per failure up to maxMs", () => {
    const policy = { initialMs: 100, maxMs: 1_000 };
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5].map((n) => backoffCeiling(policy, n)),
      [100, 200, 400, 800, 1_000, 1_000],
    );
    assert.equal(backoffCeiling({ ...policy, factor: 3 }, 2), 900);
    assert.equal(backoffCeiling(policy, 10_000), 1_000, "a huge attempt count stays at the cap");
  });

  it("draws full jitter by default: anywhere from 0 to the ceiling", () => {
    const policy = { initialMs: 1_000, maxMs: 1_000 };
    assert.equal(
      backoffDelay(policy, 0, () => 0),
      1_000,
    );
    assert.equal(
      backoffDelay(policy, 0, () => 0.5),
      500,
    );
    assert.equal(
      backoffDelay(policy, 0, () => 0.999_999),
      0,
    );
    const random = seeded(1);
    const delays = Array.from({ length: 1_000 }, () => backoffDelay(policy, 0, random));
    assert.ok(Math.min(...delays) < 50 && Math.max(...delays) > 950, "spread over the whole range");
  });

  it("keeps a floor of (1 - jitter) of the ceiling with partial jitter", () => {
    const policy = { initialMs: 1_000, maxMs: 1_000, jitter: 0.5 };
    assert.equal(
      backoffDelay(policy, 0, () => 0.999_999),
      500,
    );
    assert.equal(
      backoffDelay({ ...policy, jitter: 0 }, 0, () => 0.7),
      1_000,
    );
  });

  it("spreadAbove never shortens a pause and lengthens it by at most the share", () => {
    assert.equal(
      spreadAbove(1_000, 0.5, () => 0),
      1_000,
    );
    assert.equal(
      spreadAbove(1_000, 0.5, () => 0.999_999),
      1_500,
    );
    assert.equal(
      spreadAbove(1_000, 2, () => 0.5),
      1_500,
      "share capped at 1",
    );
  });

  it("counts failures and starts over after reset()", () => {
    const b = new Backoff({ initialMs: 10, maxMs: 1_000, jitter: 0 });
    assert.deepEqual([b.next(), b.next(), b.next()], [10, 20, 40]);
    assert.equal(b.attempts, 3);
    b.reset();
    assert.equal(b.next(), 10);
  });

  it("relay listener: at most 10 attempts in any minute, however fast or slow its attempts fail", () => {
    const random = seeded(7);
    for (let run = 0; run < 500; run++) {
      const fail = run % 2 ? () => random() * 50 : () => (random() < 0.1 ? 20_000 * random() : random() * 50);
      // Timers fire up to 2 ms early or 200 ms late; a late one can only move its attempt closer
      // to the next slot, so the minute is counted less the lateness (attempts stay on slots).
      const times = channelAttempts(random(), 10 * 60_000, fail, () => random() * 202 - 2);
      const minute = 60_000 - 200;
      for (let i = 0; i < times.length; i++) {
        const inMinute = times.filter((t) => t >= (times[i] ?? 0) && t < (times[i] ?? 0) + minute).length;
        assert.ok(inMinute <= 10, `run ${run}: ${inMinute} attempts in the minute from ${times[i]} ms`);
      }
      const expected = run % 2 ? 95 : 50; // hung attempts use up slots
      assert.ok(times.length >= expected, `run ${run}: still trying (${times.length} attempts in 10 min)`);
    }
  });

  it("relay listener: a site's two channels on slots half a period apart leave no gap over 3 s", () => {
    const random = seeded(3);
    for (let run = 0; run < 500; run++) {
      const phases = phasesApart(2, random);
      const channels = phases.map((phase) =>
        channelAttempts(
          phase,
          120_000,
          () => random() * 50,
          () => 0,
        ),
      );
      const merged = channels.flat().sort((a, b) => a - b);
      // From any moment (the relay's return), one channel's attempt comes within period / 2.
      for (let k = 1; k < merged.length; k++) {
        const gap = (merged[k] ?? 0) - (merged[k - 1] ?? 0);
        assert.ok(gap <= RETRY_PERIOD_MS / 2 + 60, `run ${run}: a ${gap} ms gap between the site's attempts`);
      }
      assert.ok(
        (merged[0] ?? Infinity) <= RETRY_PERIOD_MS / 2,
        "the first retry within half a period of the drop",
      );
    }
  });

  it("relay listener: a fleet that lost the relay at one moment retries spread over the whole period", () => {
    const random = seeded(11);
    const first = Array.from({ length: 1_000 }, () => {
      const phase = phasesApart(2, random)[0] ?? 0;
      return new RetrySlots(RETRY_PERIOD_MS, phase, () => 123_456).next();
    });
    // 1,000 sites' first retries fall in every tenth of the period, none in lockstep.
    const tenths = new Set(first.map((d) => Math.floor((d / RETRY_PERIOD_MS) * 10)));
    assert.equal(tenths.size, 10, `first retries cover ${tenths.size} tenths of the period`);
    assert.ok(Math.max(...first) <= RETRY_PERIOD_MS && Math.min(...first) >= 0);
  });

  it("retry slots: one attempt per slot, never the same slot twice, phases 1/n apart", () => {
    let clock = 10_000;
    const slots = new RetrySlots(1_000, 0.25, () => clock);
    assert.equal(slots.next(), 250, "the next slot at 10 250");
    clock = 10_249; // the timer fired 1 ms early and the attempt failed at once
    assert.equal(slots.next(), 1_001, "not the same slot again: 11 250");
    clock = 14_000; // a long hung attempt skips slots instead of catching up
    assert.equal(slots.next(), 250);
    assert.equal(slots.attempts, 3);
    slots.reset();
    assert.equal(slots.attempts, 0);
    assert.deepEqual(
      phasesApart(2, () => 0.7).map((p) => Math.round(p * 100) / 100),
      [0.7, 0.2],
    );
    assert.deepEqual(
      phasesApart(4, () => 0),
      [0, 0.25, 0.5, 0.75],
    );
    assert.throws(() => new RetrySlots(0, 0), /periodMs/);
    assert.throws(() => new RetrySlots(1_000, 1), /phase/);
  });

  it("sleep() ends early when its signal aborts", async () => {
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 20);
    await sleep(10_000, controller.signal);
    assert.ok(Date.now() - started < 5_000);
  });
});
