/**
 * IoT Hub's operation throttles, per SKU and unit count, so the simulation fails where production
 * would (issue 18). The figures are the published "IoT Hub quotas and throttling" table (see the
 * README's table); an operation past its budget answers 429 ThrottlingException, which the SDKs
 * see as they would from IoT Hub.
 *
 * Each class is a token bucket: full at start, refilled continuously at the published rate, so a
 * burst of one window's budget passes and a steady rate above it is refused. IoT Hub also shapes
 * traffic before refusing it; the emulator refuses at once, which is the stricter choice.
 */
import {
  type HubRates,
  type HubSku,
  hubRates,
  PER_MINUTE,
  type QuotaClass,
} from "../../lib/iothub-quotas.ts";
import { HubError } from "./errors.ts";

// The rates table is shared with the rollout's pacing (lib/iothub-quotas.ts), the SKUs and the
// new-connection quota with the deployment's sizing (lib/hub-fleet-size.ts).
export { HUB_SKUS, type HubSku, hubSkuSchema } from "../../lib/hub-fleet-size.ts";
export { hubRates, PER_MINUTE, type QuotaClass } from "../../lib/iothub-quotas.ts";

interface Bucket {
  capacity: number;
  perMs: number;
  tokens: number;
  at: number;
}

/** What a hub has allowed and refused, by class (for tests and the scale benchmark). */
export type QuotaCounts = Record<QuotaClass, { allowed: number; throttled: number }>;

/** Per-second rates that replace a SKU's for some classes (a test's low connection quota). */
export type QuotaOverrides = Partial<Record<QuotaClass, number>>;

export class HubQuotas {
  readonly counts = {} as QuotaCounts;
  private readonly buckets = new Map<QuotaClass, Bucket>();
  /** Sees every decision as it is made (the scale benchmark's per-second timeline). */
  onDecision: ((cls: QuotaClass, allowed: boolean, at: number) => void) | undefined;

  /** No `sku`: unthrottled (every operation allowed and counted), except classes in `overrides`. */
  constructor(
    readonly sku?: HubSku,
    readonly units = 1,
    private readonly now: () => number = Date.now,
    overrides: QuotaOverrides = {},
    /**
     * Benchmarks only: every bucket refills this many times faster (its window is that much
     * shorter) while holding the same budget, so an S1 onboarding of 10,000 sites fits a run.
     * Anything measured under it must say so and scale the quota's minimum time alike.
     */
    readonly timeScale = 1,
  ) {
    if (!(timeScale > 0) || !Number.isFinite(timeScale))
      throw new RangeError(`timeScale ${timeScale} must be > 0`);
    const rates: Partial<HubRates> = { ...(sku ? hubRates(sku, units) : {}), ...overrides };
    for (const cls of Object.keys(hubRates("S1", 1)) as QuotaClass[]) {
      this.counts[cls] = { allowed: 0, throttled: 0 };
      const rate = rates[cls];
      if (rate === undefined) continue;
      const capacity = Math.max(1, PER_MINUTE.has(cls) ? rate * 60 : rate);
      this.buckets.set(cls, {
        capacity,
        perMs: (rate * timeScale) / 1_000,
        tokens: capacity,
        at: this.now(),
      });
    }
  }

  /** True if one `cls` operation may go ahead now (and counts it). */
  tryTake(cls: QuotaClass): boolean {
    return this.tryTakeMany(cls, 1);
  }

  /**
   * True if `n` `cls` operations may all go ahead now (and counts them); otherwise none is
   * taken and all `n` count as throttled (a bulk call is refused whole, nothing of it done).
   */
  tryTakeMany(cls: QuotaClass, n: number): boolean {
    const bucket = this.refill(cls);
    if (bucket) {
      if (bucket.tokens < n) {
        this.counts[cls].throttled += n;
        const at = this.now();
        for (let i = 0; i < n; i++) this.onDecision?.(cls, false, at);
        return false;
      }
      bucket.tokens -= n;
    }
    this.counts[cls].allowed += n;
    if (this.onDecision) {
      const at = this.now();
      for (let i = 0; i < n; i++) this.onDecision(cls, true, at);
    }
    return true;
  }

  /** Seconds until `n` `cls` operations fit the budget again (0 when they fit now). */
  secondsUntil(cls: QuotaClass, n = 1): number {
    const bucket = this.refill(cls);
    if (!bucket || bucket.tokens >= n) return 0;
    return Math.ceil((n - bucket.tokens) / bucket.perMs / 1_000);
  }

  private refill(cls: QuotaClass): Bucket | undefined {
    const bucket = this.buckets.get(cls);
    if (!bucket) return undefined;
    const now = this.now();
    bucket.tokens = Math.min(bucket.capacity, bucket.tokens + (now - bucket.at) * bucket.perMs);
    bucket.at = now;
    return bucket;
  }

  /**
   * Counts `n` `cls` operations; throws 429 ThrottlingException past the budget, with the seconds
   * until they would fit as its retry hint (the `Retry-After` header on REST).
   */
  take(cls: QuotaClass, n = 1): void {
    if (this.tryTakeMany(cls, n)) return;
    if (n > (this.buckets.get(cls)?.capacity ?? Number.POSITIVE_INFINITY))
      throw new HubError(
        "ThrottlingException",
        `Throttled: ${n} ${cls} operations in one request exceed the ${this.sku} x${this.units} budget`,
      );
    const err = new HubError(
      "ThrottlingException",
      `Throttled: ${cls} operations above the ${this.sku} x${this.units} limit`,
    );
    err.retryAfterSeconds = Math.max(1, this.secondsUntil(cls, n));
    throw err;
  }
}

/** The quota class of a REST request, or undefined for operations without a throttle here. */
export function restQuotaClass(method: string, path: string): QuotaClass | undefined {
  if (path === "/devices/query") return "query";
  if (path.startsWith("/configurations") || path.endsWith("/applyConfigurationContent"))
    return "configurations";
  if (path.startsWith("/twins/")) {
    if (path.includes("/methods")) return undefined;
    return method === "GET" ? "twinRead" : "twinUpdate";
  }
  // A bulk registry call (`POST /devices`) is counted by its handler: one per device in it.
  if (path === "/devices" && method === "POST") return undefined;
  if (path === "/devices" || path.startsWith("/devices/")) return "registry";
  return undefined;
}
