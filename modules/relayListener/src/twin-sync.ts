/**
 * Keeps a faithful copy of the module twin's desired properties and hands each new version to the
 * reconciler, in `$version` order:
 *
 * - the full twin is read at start, after every reconnect (IoT Hub only notifies connected
 *   clients) and every `twinResyncMs` as a safety net; each read is bounded by `twinTimeoutMs`
 *   because the SDK's getTwin waits forever for a lost response, and retried with backoff;
 * - a patch with `$version` ≤ the current one is stale and ignored; the next version is merged
 *   (JSON merge patch: `null` deletes); a gap means a patch was missed, so the full twin is read;
 * - the SDK's own merged cache is not used: it merges stale patches and keeps keys removed
 *   while disconnected.
 */
import { Backoff } from "../../../lib/backoff.ts";
import { errorMessage } from "../../../lib/errors.ts";
import type { Logger } from "../../../lib/log.ts";
import { applyMergePatch, isPlainObject } from "../../../lib/twin/merge-patch.ts";
import { isDeadlineError, withDeadline } from "./deadline.ts";
import type { ModuleHubClient, ModuleTwin } from "./hub-client.ts";

export type DesiredHandler = (desired: Record<string, unknown>, version: number | null) => void;

export interface TwinSyncOptions {
  twinTimeoutMs: number;
  twinResyncMs: number;
  logger: Logger;
  /** A twin read missed its deadline: the client is stuck and should be re-opened. */
  onNoAnswer?(why: string): void;
  /** Ceiling of the first retry of a failed full read (grows to 30 s; full jitter). */
  retryInitialMs?: number;
}

function versionOf(doc: Record<string, unknown>): number | null {
  return typeof doc.$version === "number" ? doc.$version : null;
}

export class TwinSync {
  private desired: Record<string, unknown> = {};
  private version: number | null = null;
  private twin: ModuleTwin | undefined;
  private fetching: Promise<void> | undefined;
  private queuedPatches: Record<string, unknown>[] = [];
  private resyncTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Full reads completed (tests and getStatus). */
  fullReads = 0;

  constructor(
    private readonly client: ModuleHubClient,
    private readonly onDesired: DesiredHandler,
    private readonly opts: TwinSyncOptions,
  ) {}

  get desiredVersion(): number | null {
    return this.version;
  }

  get twinPort(): ModuleTwin | undefined {
    return this.twin;
  }

  /**
   * Reads the twin, subscribes to patches, and re-reads after each reconnect. Call it once the
   * client is open; resolves after the first read.
   */
  async start(): Promise<void> {
    // start() runs after the client is open, so every 'connect' from here on is a reconnect.
    this.client.on("connect", () => {
      this.opts.logger.info("IoT Hub connection re-established; reading the full twin");
      void this.refresh();
    });
    await this.refresh();
  }

  /** Reads the full twin now (or joins a read under way). Never rejects; retries on failure. */
  refresh(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.fetching ??= this.fullRead().finally(() => {
      this.fetching = undefined;
    });
    return this.fetching;
  }

  private async fullRead(): Promise<void> {
    const backoff = new Backoff({ initialMs: this.opts.retryInitialMs ?? 1_000, maxMs: 30_000 });
    for (;;) {
      if (this.stopped) return;
      try {
        const twin = await withDeadline(this.client.getTwin(), this.opts.twinTimeoutMs, "getTwin");
        if (this.twin !== twin) {
          // Registering the first listener subscribes to desired patches; a client that was
          // re-opened may hand out a new twin object, which needs its own subscription.
          this.twin = twin;
          twin.on("properties.desired", (patch) => {
            if (this.twin === twin) this.onPatch(patch);
          });
        }
        const full = structuredClone(twin.properties.desired ?? {});
        this.fullReads++;
        this.adopt(full);
        const queued = this.queuedPatches;
        this.queuedPatches = [];
        for (const p of queued) this.onPatch(p);
        this.scheduleResync();
        return;
      } catch (err) {
        if (isDeadlineError(err)) this.opts.onNoAnswer?.(errorMessage(err));
        const delay = backoff.next();
        this.opts.logger.warn({ err: errorMessage(err), retryInMs: delay }, "reading the module twin failed");
        await new Promise<void>((r) => {
          this.retryTimer = setTimeout(r, delay);
        });
      }
    }
  }

  private adopt(full: Record<string, unknown>): void {
    const v = versionOf(full);
    if (this.version !== null && v !== null && v < this.version) {
      this.opts.logger.warn(
        { version: v, current: this.version },
        "full twin older than applied version; ignored",
      );
      return;
    }
    const same = v !== null && v === this.version;
    this.desired = full;
    this.version = v;
    if (!same) this.onDesired(structuredClone(full), v);
  }

  private onPatch(patch: Record<string, unknown>): void {
    if (this.stopped || !isPlainObject(patch)) return;
    if (this.fetching) {
      // The SDK also fires this event with the whole document during a read; sorting it out
      // after the read keeps the order simple.
      this.queuedPatches.push(patch);
      return;
    }
    const v = versionOf(patch);
    if (v === null || (this.version !== null && v <= this.version)) {
      if (v !== null)
        this.opts.logger.debug({ version: v, current: this.version }, "stale desired patch ignored");
      return;
    }
    if (this.version !== null && v > this.version + 1) {
      this.opts.logger.info(
        { version: v, current: this.version },
        "desired patch gap; reading the full twin",
      );
      void this.refresh();
      return;
    }
    this.desired = applyMergePatch(this.desired, patch);
    this.desired.$version = v;
    this.version = v;
    this.onDesired(structuredClone(this.desired), v);
  }

  private scheduleResync(): void {
    clearTimeout(this.resyncTimer);
    this.resyncTimer = setTimeout(() => void this.refresh(), this.opts.twinResyncMs);
    this.resyncTimer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.resyncTimer);
    clearTimeout(this.retryTimer);
  }
}
