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
 * Every retry loop uses this: the module's IoT Hub re-open and twin re-read, the relay
 * listener's reconnects, the standby pool, and the emulators' delivery retries.
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
export class Backoff {
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
