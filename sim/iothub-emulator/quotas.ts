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
import { z } from "zod";
import { HubError } from "./errors.ts";

export type QuotaClass =
  | "registry"
  | "connect"
  | "twinRead"
  | "twinUpdate"
  | "query"
  | "configurations"
  | "d2c";

export const HUB_SKUS = ["F1", "B1", "B2", "B3", "S1", "S2", "S3"] as const;
export const hubSkuSchema = z.enum(HUB_SKUS);
export type HubSku = z.infer<typeof hubSkuSchema>;

/** Operations allowed per second for a class (the table's per-minute figures divided by 60). */
type Rates = Record<QuotaClass, number>;

/** The published throttles for `sku` with `units` units, in operations per second. */
export function hubRates(sku: HubSku, units: number): Rates {
  const u = Math.max(1, Math.floor(units));
  const tier = sku.endsWith("3") ? 3 : sku.endsWith("2") ? 2 : 1;
  if (tier === 3)
    return {
      registry: (5_000 * u) / 60,
      connect: 6_000 * u,
      twinRead: 6_000 * u,
      twinUpdate: 3_000 * u,
      query: (1_000 * u) / 60,
      configurations: (20 * u) / 60,
      d2c: 6_000 * u,
    };
  if (tier === 2)
    return {
      registry: (100 * u) / 60,
      connect: 120 * u,
      twinRead: 120 * u,
      twinUpdate: 60 * u,
      query: (20 * u) / 60,
      configurations: (20 * u) / 60,
      d2c: 120 * u,
    };
  // Free, B1 and S1: "higher of 100/s or 12/s per unit" and the like.
  return {
    registry: (100 * u) / 60,
    connect: Math.max(100, 12 * u),
    twinRead: Math.max(100, 10 * u),
    twinUpdate: Math.max(50, 5 * u),
    query: (20 * u) / 60,
    configurations: (20 * u) / 60,
    d2c: Math.max(100, 12 * u),
  };
}

/** A bucket holds a minute's budget for per-minute classes and a second's for the others. */
const PER_MINUTE: ReadonlySet<QuotaClass> = new Set(["registry", "query", "configurations"]);

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
    const rates: Partial<Rates> = { ...(sku ? hubRates(sku, units) : {}), ...overrides };
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
    const bucket = this.buckets.get(cls);
    if (bucket) {
      const now = this.now();
      bucket.tokens = Math.min(bucket.capacity, bucket.tokens + (now - bucket.at) * bucket.perMs);
      bucket.at = now;
      if (bucket.tokens < 1) {
        this.counts[cls].throttled++;
        this.onDecision?.(cls, false, now);
        return false;
      }
      bucket.tokens -= 1;
    }
    this.counts[cls].allowed++;
    this.onDecision?.(cls, true, this.now());
    return true;
  }

  /** Counts one `cls` operation; throws 429 ThrottlingException past the budget. */
  take(cls: QuotaClass): void {
    if (!this.tryTake(cls))
      throw new HubError(
        "ThrottlingException",
        `Throttled: ${cls} operations above the ${this.sku} x${this.units} limit`,
      );
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
  if (path === "/devices" || path.startsWith("/devices/")) return "registry";
  return undefined;
}
