/**
 * The rollout within IoT Hub's throttles (issue 18): at most `maxInFlight` hub operations at once
 * per rollout instance, and an operation IoT Hub answers 429 (ThrottlingException) is retried
 * after the hub's `Retry-After` hint or a jittered backoff instead of failing the site. Every FleetHub operation is idempotent
 * (ensure-style creates, merge patches, deletes where absent is fine), so a retry after a refused
 * or lost answer never duplicates anything.
 *
 * A slot is held while its operation waits to retry: under throttling the instance then slows
 * down as a whole rather than letting new operations collect more 429s.
 */
import { Backoff, type BackoffPolicy, sleep } from "../../../../lib/backoff.ts";
import { RelayFleetError } from "../../../../lib/errors.ts";
import { type FleetHub, hubStatus } from "./hub.ts";

export interface HubPacingOptions {
  /** Hub operations in flight at once (default 8). */
  maxInFlight?: number;
  /** Give up on an operation throttled for longer than this (default 2 min). */
  maxWaitMs?: number;
  /** Retry delays (default 1 s doubling to 30 s, the upper half of each step random). */
  backoff?: BackoffPolicy;
  /** Called before each wait, for logs and metrics. */
  onThrottled?: (operation: string, delayMs: number) => void;
  /** For tests. */
  wait?: (ms: number) => Promise<void>;
  now?: () => number;
}

const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 1_000, maxMs: 30_000, jitter: 0.5 };

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

/** `hub` with bounded concurrency and 429 retries on every operation. */
export function withHubPacing(hub: FleetHub, options: HubPacingOptions = {}): FleetHub {
  const slots = new Slots(options.maxInFlight ?? 8);
  const maxWaitMs = options.maxWaitMs ?? 120_000;
  const wait = options.wait ?? ((ms: number) => sleep(ms));
  const now = options.now ?? Date.now;

  async function paced<T>(operation: string, call: () => Promise<T>): Promise<T> {
    return slots.run(async () => {
      const backoff = new Backoff(options.backoff ?? DEFAULT_BACKOFF);
      const started = now();
      for (;;) {
        try {
          return await call();
        } catch (err) {
          if (!isThrottled(err)) throw err;
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
          await wait(delay);
        }
      }
    });
  }

  const pacedHub = { ...hub };
  for (const name of Object.keys(hub) as Array<keyof FleetHub>) {
    const method = hub[name] as unknown;
    if (typeof method !== "function") continue;
    (pacedHub as unknown as Record<string, unknown>)[name] = (...args: unknown[]) =>
      paced(name, () => (method as (...a: unknown[]) => Promise<unknown>).apply(hub, args));
  }
  return pacedHub;
}
