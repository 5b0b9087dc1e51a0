/**
 * The rollout within IoT Hub's throttles (issue 18, ADR 0024). Every hub operation goes through
 * a rate limiter of its quota class (identity registry, twin reads, twin updates, queries), a
 * token bucket sized to the hub's documented rates for its SKU and units (`rates`: full at start,
 * as the hub's is, and refilled at the published rate), so the rollout sends what the hub allows
 * and no more. The hub's answers are the feedback: an operation answered 429 (ThrottlingException)
 * empties its class's bucket, so the class goes on at the refill rate, and the refused operation
 * is retried after the hub's `Retry-After` hint (or a jittered backoff without one). A class
 * without a known rate (no SKU configured) is paced by the 429s alone, as before: a throttled
 * call waits holding its slot of the `maxInFlight`.
 *
 * Every FleetHub operation is idempotent (ensure-style creates, merge patches, deletes where
 * absent is fine), so a retry after a refused or lost answer never duplicates anything.
 */
import { Backoff, type BackoffPolicy, sleep } from "../../../../lib/backoff.ts";
import { RelayFleetError } from "../../../../lib/errors.ts";
import { burstOf, type QuotaClass } from "../../../../lib/iothub-quotas.ts";
import { type FleetHub, hubStatus } from "./hub.ts";

export interface HubPacingOptions {
  /**
   * Hub operations under way at once (default 64 with `rates`, 8 without: then the slots held by
   * throttled calls are what slows the instance down).
   */
  maxInFlight?: number;
  /**
   * Operations a second the hub allows per quota class (`hubRates(sku, units)` from
   * lib/iothub-quotas.ts); a class left out is paced by the hub's 429 answers alone.
   */
  rates?: Partial<Record<QuotaClass, number>>;
  /**
   * Benchmarks against the IoT Hub emulator's quota time scale: buckets refill this many times
   * faster and hold the same budget, as the emulator's do (default 1).
   */
  timeScale?: number;
  /** Give up on an operation throttled for longer than this (default 2 min). */
  maxWaitMs?: number;
  /** Retry delays without a hint (default 1 s doubling to 30 s, the upper half of each step random). */
  backoff?: BackoffPolicy;
  /** Called before each wait after a 429, for logs and metrics. */
  onThrottled?: (operation: string, delayMs: number) => void;
  /** For tests. */
  wait?: (ms: number) => Promise<void>;
  now?: () => number;
}

const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 1_000, maxMs: 30_000, jitter: 0.5 };

/**
 * The quota class of each FleetHub operation and the operations it costs there (how IoT Hub
 * counts them: one per device of a bulk call; a module ensure without `fresh` reads first).
 */
const COST: Record<keyof FleetHub, { cls: QuotaClass; ops: (args: unknown[]) => number }> = {
  getDevice: { cls: "registry", ops: () => 1 },
  ensureEdgeDevice: { cls: "registry", ops: () => 1 },
  createEdgeDevices: { cls: "registry", ops: (args) => (args[0] as readonly string[]).length },
  deleteDevice: { cls: "registry", ops: () => 1 },
  ensureModule: {
    cls: "registry",
    ops: (args) => ((args[2] as { fresh?: boolean } | undefined)?.fresh === true ? 1 : 2),
  },
  getDeviceTags: { cls: "twinRead", ops: () => 1 },
  getModuleTwin: { cls: "twinRead", ops: () => 1 },
  patchDeviceTags: { cls: "twinUpdate", ops: () => 1 },
  patchModuleDesired: { cls: "twinUpdate", ops: () => 1 },
  queryModuleTwins: { cls: "query", ops: () => 1 },
  queryFleetDevices: { cls: "query", ops: () => 1 },
  baseDeploymentFleetSize: { cls: "configurations", ops: () => 1 },
};

/** True when IoT Hub refused for throttling (the SDK's error, or it wrapped as our cause). */
export function isThrottled(err: unknown): boolean {
  if (hubStatus(err) === 429) return true;
  const cause = (err as { cause?: unknown } | null)?.cause;
  return cause !== undefined && hubStatus(cause) === 429;
}

/**
 * The hub's retry hint in ms (`Retry-After` in seconds on the 429 answer, on the SDK's error or
 * on the error it was wrapped in); undefined when there is none.
 */
export function retryAfterMs(err: unknown): number | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 3; e = (e as { cause?: unknown }).cause, depth++) {
    const headers = (e as { response?: { headers?: Record<string, unknown> } }).response?.headers;
    const raw = headers?.["retry-after"];
    const seconds = Number(Array.isArray(raw) ? raw[0] : raw);
    if (raw !== undefined && Number.isFinite(seconds) && seconds >= 0) return seconds * 1_000;
  }
  return undefined;
}

/** A counting semaphore: `run` waits for a free slot. */
class Slots {
  private free: number;
  private readonly waiting: Array<() => void> = [];

  constructor(size: number) {
    this.free = Math.max(1, size);
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    }
  }
}

/**
 * One quota class: a token bucket at the hub's rate when it is known (without one, `take` never
 * waits). Takers are served in order, so a bulk call that needs many tokens is not overtaken by
 * single operations until the bucket has refilled for it.
 *
 * The bucket holds a little less than the hub's: requests reach the hub some milliseconds after
 * they leave here, not always in the order they left, and the few operations held back absorb
 * that instead of a 429. A 429 empties the bucket (the hub's is emptier than ours was), so the
 * class goes on at the refill rate, the hub's state, rather than waiting out the hub's
 * whole-second hint (the throttled operation itself does wait it out).
 */
class ClassLimiter {
  private tokens: number;
  private at: number;
  private readonly queue: Array<{ n: number; resolve: () => void }> = [];
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly capacity: number;
  private readonly perMs: number;

  constructor(
    cls: QuotaClass,
    perSecond: number | undefined,
    timeScale: number,
    private readonly now: () => number,
  ) {
    const burst = perSecond === undefined ? 0 : burstOf(cls, perSecond);
    // Held back: a tenth of the burst, at most a second of refill, at least one operation.
    const refill = (perSecond ?? 0) * timeScale;
    const reserve = perSecond === undefined ? 0 : Math.max(1, Math.min(burst * 0.1, refill));
    this.capacity = perSecond === undefined ? 0 : Math.max(1, burst - reserve);
    this.perMs = refill / 1_000;
    this.tokens = this.capacity;
    this.at = now();
  }

  get metered(): boolean {
    return this.perMs > 0;
  }

  /** Waits until `n` operations may go ahead (the bucket holds them and the class is open). */
  take(n: number): Promise<void> {
    return new Promise((resolve) => {
      this.queue.push({ n, resolve });
      this.serve();
    });
  }

  /** The hub refused for throttling: its bucket is emptier than ours was. */
  throttled(): void {
    this.refill();
    this.tokens = Math.min(this.tokens, 0);
  }

  private refill(): void {
    const now = this.now();
    if (this.metered) this.tokens = Math.min(this.capacity, this.tokens + (now - this.at) * this.perMs);
    this.at = now;
  }

  private serve(): void {
    this.refill();
    for (;;) {
      const head = this.queue[0];
      if (!head) return;
      // A call bigger than the bucket goes when the bucket is full (the hub counts it whole).
      const need = Math.min(head.n, this.capacity);
      const shortMs = this.metered && this.tokens < need ? Math.ceil((need - this.tokens) / this.perMs) : 0;
      if (shortMs > 0) {
        if (this.timer === undefined) {
          this.timer = setTimeout(() => {
            this.timer = undefined;
            this.serve();
          }, shortMs);
        }
        return;
      }
      this.queue.shift();
      if (this.metered) this.tokens -= head.n;
      head.resolve();
    }
  }
}

/** `hub` paced per quota class, with bounded operations in flight and 429 retries on every operation. */
export function withHubPacing(hub: FleetHub, options: HubPacingOptions = {}): FleetHub {
  const slots = new Slots(options.maxInFlight ?? (options.rates ? 64 : 8));
  const maxWaitMs = options.maxWaitMs ?? 120_000;
  const wait = options.wait ?? ((ms: number) => sleep(ms));
  const now = options.now ?? Date.now;
  const limiters = new Map<QuotaClass, ClassLimiter>();
  const limiterOf = (cls: QuotaClass) => {
    let l = limiters.get(cls);
    if (!l) {
      l = new ClassLimiter(cls, options.rates?.[cls], options.timeScale ?? 1, now);
      limiters.set(cls, l);
    }
    return l;
  };

  async function paced<T>(operation: keyof FleetHub, args: unknown[], call: () => Promise<T>): Promise<T> {
    const cost = COST[operation];
    const limiter = cost ? limiterOf(cost.cls) : undefined;
    const ops = cost ? Math.max(1, cost.ops(args)) : 0;
    const backoff = new Backoff(options.backoff ?? DEFAULT_BACKOFF);
    const started = now();
    /** The wait before retrying a throttled call; throws when the call has waited too long. */
    const waitFor = (err: unknown): number => {
      // The hub's own hint when it gives one (plus up to 20 % jitter, so the instance's
      // waiting operations do not all return in the same instant), else our backoff.
      const hint = retryAfterMs(err);
      const delay = hint === undefined ? backoff.next() : Math.max(100, hint * (1 + Math.random() * 0.2));
      if (now() - started + delay > maxWaitMs)
        throw new RelayFleetError(
          "RF_ERR_ROLLOUT_IOTHUB_THROTTLED",
          `IoT Hub kept throttling ${operation} for ${Math.round((now() - started) / 1000)} s (429); try again later or add IoT Hub units`,
          { cause: err },
        );
      options.onThrottled?.(operation, delay);
      return delay;
    };
    if (limiter?.metered) {
      // A known rate: the bucket paces the class; a 429 empties it and this call waits its hint
      // without holding a slot.
      for (;;) {
        await limiter.take(ops);
        try {
          return await slots.run(call);
        } catch (err) {
          if (!isThrottled(err)) throw err;
          const delay = waitFor(err);
          limiter.throttled();
          await wait(delay);
        }
      }
    }
    // No known rate: the 429s alone pace the class. A throttled call waits holding its slot,
    // so under throttling the instance slows down as a whole rather than collecting more 429s.
    return slots.run(async () => {
      for (;;) {
        try {
          return await call();
        } catch (err) {
          if (!isThrottled(err)) throw err;
          await wait(waitFor(err));
        }
      }
    });
  }

  const pacedHub = { ...hub };
  for (const name of Object.keys(hub) as Array<keyof FleetHub>) {
    const method = hub[name] as unknown;
    if (typeof method !== "function") continue;
    (pacedHub as unknown as Record<string, unknown>)[name] = (...args: unknown[]) =>
      paced(name, args, () => (method as (...a: unknown[]) => Promise<unknown>).apply(hub, args));
  }
  return pacedHub;
}
