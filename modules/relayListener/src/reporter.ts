/**
 * Reported properties, throttled and coalesced: any number of changes within `intervalMs` become
 * one twin patch carrying only what differs from what was last sent (a busy site never floods
 * IoT Hub). A failed update is retried at the next interval with the then-current state.
 */
import { errorMessage } from "../../../lib/errors.ts";
import type { Logger } from "../../../lib/log.ts";
import {
  computeMergePatch,
  fitReported,
  type ReportedPatch,
  type ReportedProperties,
} from "../../../lib/twin/index.ts";

export type ReportSink = (patch: ReportedPatch) => Promise<void>;

export interface ReporterOptions {
  intervalMs: number;
  build(): ReportedProperties;
  logger: Logger;
}

/**
 * Only what changed since `previous` (a JSON merge patch: removed mappings become `null`);
 * `updatedAt` goes along with any change but is no change by itself.
 */
export function reportedDiff(
  previous: ReportedProperties | undefined,
  next: ReportedProperties,
): ReportedPatch {
  if (!previous) return next;
  const { updatedAt: _was, ...before } = previous;
  const { updatedAt, ...after } = next;
  const patch: ReportedPatch = computeMergePatch(before, after);
  if (Object.keys(patch).length > 0) patch.updatedAt = updatedAt;
  return patch;
}

export class Reporter {
  private sink: ReportSink | undefined;
  private lastSent: ReportedProperties | undefined;
  private lastSentAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private dirty = false;
  private staleNames: string[] = [];
  /** Patches sent (tests, metrics). */
  sent = 0;

  constructor(private readonly opts: ReporterOptions) {}

  /**
   * Where patches go; set once the twin is available. A full document goes first, deleting
   * mappings a previous run reported (`previousMappings`) that no longer exist.
   */
  attach(sink: ReportSink, previousMappings: string[] = []): void {
    this.sink = sink;
    this.lastSent = undefined;
    this.staleNames = previousMappings;
    this.markChanged();
  }

  /**
   * IoT Hub may have lost what was sent (the client was re-opened after a missed deadline): send
   * the whole current document next, deleting every mapping reported before that is gone now.
   */
  resendAll(): void {
    if (this.lastSent)
      this.staleNames = [...new Set([...this.staleNames, ...Object.keys(this.lastSent.mappings)])];
    this.lastSent = undefined;
    this.markChanged();
  }

  /** Something changed: report within the interval, coalesced with other changes. */
  markChanged(): void {
    this.dirty = true;
    if (this.timer || !this.sink) return;
    const wait = Math.max(0, this.lastSentAt + this.opts.intervalMs - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, wait);
  }

  /** Sends now whatever changed (shutdown uses it to report `offline`). */
  async flush(): Promise<void> {
    if (this.inFlight) await this.inFlight.catch(() => {});
    if (!this.sink || !this.dirty) return;
    this.dirty = false;
    const doc = fitReported(this.opts.build());
    const patch = reportedDiff(this.lastSent, doc);
    if (!this.lastSent && this.staleNames.length > 0) {
      const mappings: Record<string, unknown> = { ...doc.mappings };
      for (const name of this.staleNames) if (!(name in doc.mappings)) mappings[name] = null;
      patch.mappings = mappings as ReportedPatch["mappings"];
    }
    if (Object.keys(patch).length === 0) return;
    this.lastSentAt = Date.now();
    this.inFlight = this.sink(patch);
    try {
      await this.inFlight;
      this.lastSent = doc;
      this.staleNames = [];
      this.sent++;
    } catch (err) {
      // Keep lastSent: the next attempt diffs against what IoT Hub actually has.
      this.opts.logger.warn({ err: errorMessage(err) }, "reporting properties failed; retrying");
      this.markChanged();
    } finally {
      this.inFlight = undefined;
    }
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
