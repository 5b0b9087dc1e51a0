import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Backoff, backoffCeiling, backoffDelay, sleep, spreadAbove } from "../../lib/backoff.ts";
import { DEFAULT_BACKOFF } from "../../lib/hyco/constants.ts";

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

/** Attempt times (ms after the outage began) of one listener over `windowMs`. */
function attemptTimes(random: () => number, windowMs: number): number[] {
  const times: number[] = [];
  const backoff = new Backoff(DEFAULT_BACKOFF, random);
  for (let t = backoff.next(); t < windowMs; t += backoff.next()) times.push(t);
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

  it("relay listener: under 10 attempts a minute on average, gap at most 9 s, never below half its ceiling", () => {
    const random = seeded(7);
    let total = 0;
    const runs = 2_000;
    for (let i = 0; i < runs; i++) {
      const times = attemptTimes(random, 60_000);
      total += times.length;
      for (let k = 1; k < times.length; k++) {
        const gap = (times[k] ?? 0) - (times[k - 1] ?? 0);
        assert.ok(gap <= 9_000, `gap ${gap} ms`);
        assert.ok(gap >= backoffCeiling(DEFAULT_BACKOFF, k) / 2 - 1, `gap ${gap} ms at step ${k}`);
      }
    }
    assert.ok(total / runs < 10, `${total / runs} attempts a minute on average`);
  });

  it("relay listener: a fleet that lost the relay at one moment does not retry in lockstep", () => {
    const random = seeded(11);
    // First retry of 1,000 listeners: spread over more than 45 % of its ceiling (the old 30 %
    // jitter could spread them over 30 % at most).
    const first = Array.from({ length: 1_000 }, () => attemptTimes(random, 60_000)[0] ?? 0);
    const spread = Math.max(...first) - Math.min(...first);
    assert.ok(spread > 0.45 * DEFAULT_BACKOFF.initialMs, `first retries spread over ${spread} ms`);
  });

  it("sleep() ends early when its signal aborts", async () => {
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 20);
    await sleep(10_000, controller.signal);
    assert.ok(Date.now() - started < 5_000);
  });
});
