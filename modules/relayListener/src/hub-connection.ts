/**
 * The module's IoT Hub client connection: opens it (retrying with backoff), and re-opens it when
 * an SDK call missed its deadline — a hub that died with a call in flight leaves the SDK waiting
 * for an answer that never comes, so the connection is closed and opened again, and the owner
 * (`onReopened`) re-reads the twin and reports its current state in full.
 *
 * One recovery runs at a time; calls that miss their deadline meanwhile join it.
 */
import { Backoff, type BackoffPolicy, type RetrySchedule, sleep } from "../../../lib/backoff.ts";
import { errorMessage } from "../../../lib/errors.ts";
import type { Logger } from "../../../lib/log.ts";
import { isDeadlineError, withDeadline } from "./deadline.ts";
import type { ModuleHubClient } from "./hub-client.ts";

/** Re-opening the IoT Hub client: full jitter up to 30 s, so a fleet back from a hub outage spreads out. */
export const HUB_OPEN_BACKOFF: BackoffPolicy = { initialMs: 1_000, maxMs: 30_000 };

export interface HubConnectionOptions {
  /** Deadline of every SDK call (open, close, and the calls made through `call`). */
  deadlineMs: number;
  logger: Logger;
  isStopping(): boolean;
  /** Runs after every re-open (not after the first open): re-read the twin, report in full. */
  onReopened(): Promise<void>;
  backoff?: BackoffPolicy;
  /**
   * The fleet-sized reconnect slots (hub-retry.ts): when given, a recovery waits for the module's
   * next slot before each attempt (the first one too) instead of `backoff`, so a fleet that lost
   * the hub together comes back within the hub's new-connection quota (ADR 0027).
   */
  slots?: { schedule(): RetrySchedule; delayToNextSlot(): number };
}

export class HubConnection {
  private recovering: Promise<void> | undefined;
  /** Counts completed re-opens: a call made before the last one says nothing about the new client. */
  private generation = 0;
  /** Re-opens after a missed deadline (tests, metrics). */
  reopens = 0;
  /**
   * The device SDK's `close()` removes its own transport `disconnect` handler and `open()` never
   * adds it back: after a close of ours the SDK no longer notices a lost connection (it neither
   * retries nor emits `disconnect`), so the module has to (`transportLost`).
   */
  private sdkStoppedWatching = false;

  constructor(
    private readonly client: ModuleHubClient,
    private readonly opts: HubConnectionOptions,
  ) {}

  /**
   * Opens the client; retries with backoff until it is open or the module stops. An attempt that
   * misses its deadline is closed before the next one, so the SDK starts from a clean state.
   */
  async open(): Promise<void> {
    return this.openWith(new Backoff(this.opts.backoff ?? HUB_OPEN_BACKOFF));
  }

  /**
   * Opens with `backoff` between attempts. A module's first open keeps the plain backoff (a
   * fleet does not start in one second); recoveries use the fleet's slots when given.
   */
  private async openWith(backoff: RetrySchedule): Promise<void> {
    for (;;) {
      try {
        await withDeadline(this.client.open(), this.opts.deadlineMs, "opening the IoT Hub client");
        return;
      } catch (err) {
        if (this.opts.isStopping()) return;
        if (isDeadlineError(err)) await this.closeQuietly();
        const delay = backoff.next();
        this.opts.logger.warn({ err: errorMessage(err), retryInMs: delay }, "connecting to IoT Hub failed");
        await sleep(delay);
        if (this.opts.isStopping()) return;
      }
    }
  }

  /**
   * Runs one SDK call with the deadline. A missed deadline starts a re-open (in the background)
   * and rejects the call, so its caller retries later on the re-opened client.
   */
  async call<T>(what: string, run: () => Promise<T>): Promise<T> {
    const generation = this.generation;
    try {
      return await withDeadline(run(), this.opts.deadlineMs, what);
    } catch (err) {
      if (isDeadlineError(err) && generation === this.generation) void this.reopen(errorMessage(err));
      throw err;
    }
  }

  /** Closes and opens the client again, then runs `onReopened`; joins a recovery under way. */
  reopen(why: string): Promise<void> {
    return this.recover(why, true);
  }

  /** The SDK gave up reconnecting by itself: open again (nothing to close), then `onReopened`. */
  reconnect(why: string): Promise<void> {
    return this.recover(why, false);
  }

  private recover(why: string, close: boolean): Promise<void> {
    if (this.opts.isStopping()) return Promise.resolve();
    this.recovering ??= (async () => {
      this.reopens++;
      this.opts.logger.warn(
        { reason: why },
        close ? "IoT Hub call got no answer; re-opening the client" : "IoT Hub connection lost; reconnecting",
      );
      if (close) await this.closeQuietly();
      // A new connection: on the module's slot, not at once (the whole fleet may be doing this).
      const wait = this.opts.slots?.delayToNextSlot() ?? 0;
      if (wait > 0) await sleep(wait);
      if (this.opts.isStopping()) return;
      await this.openWith(this.opts.slots?.schedule() ?? new Backoff(this.opts.backoff ?? HUB_OPEN_BACKOFF));
      this.generation++;
      if (this.opts.isStopping()) return;
      await this.opts.onReopened();
    })()
      .catch((err) =>
        this.opts.logger.error({ err: errorMessage(err) }, "recovering the IoT Hub connection failed"),
      )
      .finally(() => {
        this.recovering = undefined;
      });
    return this.recovering;
  }

  /**
   * The transport lost its connection (hub-transport.ts). The SDK handles that itself until the
   * module closed the client once; from then on the module reconnects on its slot.
   */
  transportLost(): void {
    if (this.sdkStoppedWatching) void this.reconnect("connection lost");
  }

  /** Closes the client with the deadline; a close that fails or hangs is not an error here. */
  async closeQuietly(): Promise<void> {
    this.sdkStoppedWatching = true;
    await withDeadline(this.client.close(), this.opts.deadlineMs, "closing the IoT Hub client").catch(
      () => {},
    );
  }
}
