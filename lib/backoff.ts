/**
 * The one retry backoff of the project: capped exponential steps with random jitter, so that
 * after an outage a fleet of thousands of modules and gateways does not retry in lockstep.
 *
 * Each step has a ceiling `min(maxMs, initialMs * factor^attempt)`; the delay is drawn uniformly
 * from the top `jitter` share of it. `jitter: 1` (the default) is "full jitter" — anywhere in
 * `[0, ceiling]` — which spreads retries best (see the AWS Architecture Blog's "Exponential
 * Backoff And Jitter"). A smaller share keeps a floor under each delay where a peer bounds the
 * retry rate (the relay listener, see `lib/hyco/constants.ts` and ADR 0006).
 *
 * Every retry loop uses this: the module's IoT Hub re-open and twin re-read, the standby pool,
 * the gateway's bind retry and circuit breaker, the Entra ID token refresh, the simulation's
 * process supervisor and the emulators' delivery retries. The relay listener's reconnects
 * use its fixed-rate form, {@link RetrySlots} (ADR 0013).
 */

/** How a retry loop backs off. */
export interface BackoffPolicy {
  /** Ceiling of the first delay. */
  initialMs: number;
  /** Largest ceiling any delay can have. */
  maxMs: number;
  /** Ceiling multiplier per consecutive failure (default 2). */
  factor?: number;
  /** 0..1: share of each step that is random; 1 (default) = full jitter, 0 = none. */
  jitter?: number;
}

/** Ceiling of the delay before retry `attempt` (0-based) under `policy`. */
export function backoffCeiling(policy: BackoffPolicy, attempt: number): number {
  const factor = policy.factor ?? 2;
  const exponent = Math.min(Math.max(0, attempt), 64); // 2^64 steps is far past any cap
  return Math.max(0, Math.min(policy.maxMs, policy.initialMs * factor ** exponent));
}

/** Delay before retry `attempt` (0-based) under `policy`; `random` is injectable for tests. */
export function backoffDelay(
  policy: BackoffPolicy,
  attempt: number,
  random: () => number = Math.random,
): number {
  const ceiling = backoffCeiling(policy, attempt);
  const jitter = Math.min(1, Math.max(0, policy.jitter ?? 1));
  return Math.round(ceiling * (1 - jitter * random()));
}

/**
 * A fixed pause, lengthened at random by up to `share` of itself: never shorter than asked (a
 * peer's "ask again later"), yet callers that were told at one moment come back apart.
 */
export function spreadAbove(ms: number, share = 0.5, random: () => number = Math.random): number {
  return Math.round(ms * (1 + Math.min(1, Math.max(0, share)) * random()));
}

/**
 * The state of one retry loop: `next()` gives the delay before the next attempt and counts it,
 * `reset()` starts over after a success.
 */
export class Backoff implements RetrySchedule {
  private failures = 0;

  constructor(
    readonly policy: BackoffPolicy,
    private readonly random: () => number = Math.random,
  ) {}

  /** Consecutive failures so far. */
  get attempts(): number {
    return this.failures;
  }

  /** Delay before the next retry; each call counts one more failure. */
  next(): number {
    return backoffDelay(this.policy, this.failures++, this.random);
  }

  /** A success: the next failure starts again at the first step. */
  reset(): void {
    this.failures = 0;
  }
}

/** What a retry loop asks of its schedule: `Backoff` and `RetrySlots` both answer it. */
export interface RetrySchedule {
  /** Delay before the next attempt; each call counts one more failure. */
  next(): number;
  /** A success. */
  reset(): void;
  /** Consecutive failures so far. */
  readonly attempts: number;
}

/**
 * Retries at a fixed rate on a grid of slots instead of growing delays: attempts fall only at
 * `(phase + k) × periodMs` on the process's monotonic clock, never two in one slot. That bounds
 * the rate exactly (one attempt per period, whatever the failures do, however fast they come) and
 * keeps the wait for a peer that is back below one period.
 *
 * Loops that stand in for each other (a site's listener channels) take phases spread evenly
 * ({@link phasesApart}): one of them is due within `periodMs / n` of any moment. Each group's first
 * phase is random, so a fleet that lost its peer at one moment comes back spread evenly over the
 * whole period rather than in lockstep, and stays spread while the peer is down. ADR 0013.
 */
export class RetrySlots implements RetrySchedule {
  private lastSlot = Number.NEGATIVE_INFINITY;
  private failures = 0;

  constructor(
    readonly periodMs: number,
    /** 0 ≤ phase < 1: where in each period this loop's slot lies. */
    readonly phase: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!(periodMs > 0) || !Number.isFinite(periodMs))
      throw new RangeError(`periodMs ${periodMs} must be > 0`);
    if (!(phase >= 0 && phase < 1)) throw new RangeError(`phase ${phase} must be in [0, 1)`);
  }

  get attempts(): number {
    return this.failures;
  }

  /** Delay to the next slot after now that no earlier attempt used (a timer firing early cannot double one). */
  next(): number {
    const now = this.now();
    const offset = this.phase * this.periodMs;
    let slot = Math.floor((now - offset) / this.periodMs) + 1;
    if (slot <= this.lastSlot) slot = this.lastSlot + 1;
    this.lastSlot = slot;
    this.failures++;
    return Math.max(0, Math.ceil(offset + slot * this.periodMs - now));
  }

  reset(): void {
    this.failures = 0;
  }
}

/**
 * `count` phases `1 / count` apart, the first one random: for loops that back each other up
 * (see {@link RetrySlots}).
 */
export function phasesApart(count: number, random: () => number = Math.random): number[] {
  const first = Math.min(Math.max(0, random()), 0.999_999);
  return Array.from({ length: Math.max(0, count) }, (_, i) => (first + i / count) % 1);
}

/**
 * Waits `ms`, or less if `signal` aborts (then it resolves early, never rejects: a retry loop
 * checks its own stop flag after the wait).
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * The period over which a fleet spreads its reconnects so that together they open at most
 * `perSecond` new connections a second: `fleetSize / perSecond` seconds, never below `floorMs`
 * (a small fleet still waits a little between attempts). Each member retries once per period on
 * its own random phase ({@link nextSlotDelay}), so the fleet's attempts arrive evenly at
 * `fleetSize / period` a second, however long the peer was away (ADR 0027).
 */
export function fleetSpreadPeriodMs(fleetSize: number, perSecond: number, floorMs: number): number {
  if (!(fleetSize >= 1) || !Number.isFinite(fleetSize))
    throw new RangeError(`fleetSize ${fleetSize} must be >= 1`);
  if (!(perSecond > 0) || !Number.isFinite(perSecond))
    throw new RangeError(`perSecond ${perSecond} must be > 0`);
  return Math.max(floorMs, Math.ceil((fleetSize / perSecond) * 1_000));
}

/**
 * Delay from now to this loop's next slot `(phase + k) × periodMs` that is at least `minGapMs`
 * away. `now` is the wall clock by default: the slots of a fleet's modules are only spread when
 * they count from the same origin. Unlike {@link RetrySlots} it keeps no state, so several retry
 * loops of one client may share it: they all land on the same slots (and share one connection
 * attempt there), and two attempts of one loop are at least `minGapMs` apart even when a timer
 * fires early.
 */
export function nextSlotDelay(
  periodMs: number,
  phase: number,
  minGapMs: number,
  now: number = Date.now(),
): number {
  const offset = phase * periodMs;
  const earliest = now + Math.max(0, minGapMs);
  const slot = Math.ceil((earliest - offset) / periodMs);
  return Math.max(0, Math.ceil(offset + slot * periodMs - now));
}

/** 1/φ = (√5 − 1) / 2: the step of the most evenly spread of all Kronecker sequences. */
export const GOLDEN_RATIO_CONJUGATE = (Math.sqrt(5) - 1) / 2;

/**
 * The reconnect phase of the fleet's `ordinal`-th member: `frac(ordinal / φ)`. Unlike random
 * phases (a Binomial spread: at 95 a second some seconds see 120), the first N of these points
 * split the period into gaps of at most three lengths within a factor φ of each other (the
 * three-gap theorem), so any window of the period holds `N × its length` give or take two,
 * whatever N is: a fleet that grows one site at a time is evenly spread at every size, and
 * members that leave only thin it out. ADR 0031.
 */
export function evenPhase(ordinal: number): number {
  if (!Number.isSafeInteger(ordinal) || ordinal < 0)
    throw new RangeError(`ordinal ${ordinal} must be a non-negative safe integer`);
  // Reduced mod 2^32 first, so the product stays below 2^32 and its fraction is exact to 1e-6.
  const phase = ((ordinal % 2 ** 32) * GOLDEN_RATIO_CONJUGATE) % 1;
  return phase < 1 ? phase : 0;
}
