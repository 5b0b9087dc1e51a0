/**
 * Sends tunnel audit records upstream as IoT Hub telemetry (output `audit`, routed to
 * `$upstream` by the deployment), batched and bounded so that a connection flood cannot flood the
 * hub: at most one message per `intervalMs` with at most `maxBatch` records, one send in flight,
 * and a queue of `maxQueue` records that drops the oldest first (the next batch says how many).
 */

import { AUDIT_MESSAGE_TYPE, type AuditBatch, type AuditRecord } from "../../../lib/audit/index.ts";
import { errorMessage } from "../../../lib/errors.ts";
import type { Logger } from "../../../lib/log.ts";

/** Sends one message body with its application properties; rejects when the hub did not take it. */
export type AuditSink = (body: string, properties: Record<string, string>) => Promise<void>;

export interface AuditSenderOptions {
  intervalMs: number;
  maxBatch: number;
  maxQueue: number;
  logger: Logger;
}

export const AUDIT_DEFAULTS = { intervalMs: 5_000, maxBatch: 200, maxQueue: 2_000 };

export class AuditSender {
  private readonly queue: AuditRecord[] = [];
  private dropped = 0;
  private sink: AuditSink | undefined;
  private timer: NodeJS.Timeout | undefined;
  private sending = false;
  /** Messages sent and records sent (tests, logs). */
  messages = 0;
  records = 0;

  constructor(private readonly opts: AuditSenderOptions) {}

  /** Where batches go; until set, records wait in the (bounded) queue. */
  attach(sink: AuditSink): void {
    this.sink = sink;
    this.schedule();
  }

  add(record: AuditRecord): void {
    this.queue.push(record);
    if (this.queue.length > this.opts.maxQueue) {
      this.dropped += this.queue.length - this.opts.maxQueue;
      this.queue.splice(0, this.queue.length - this.opts.maxQueue);
    }
    this.schedule();
  }

  /** Records waiting (tests). */
  get pending(): number {
    return this.queue.length;
  }

  private schedule(): void {
    if (this.timer || !this.sink || this.queue.length === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, this.opts.intervalMs);
    this.timer.unref();
  }

  /** Sends one batch now (also what shutdown calls). */
  async flush(): Promise<void> {
    const sink = this.sink;
    if (!sink || this.sending || this.queue.length === 0) return;
    this.sending = true;
    const records = this.queue.splice(0, this.opts.maxBatch);
    const batch: AuditBatch = { type: "relay-fleet.audit", v: 1, records, dropped: this.dropped };
    try {
      await sink(JSON.stringify(batch), { relayFleetType: AUDIT_MESSAGE_TYPE });
      this.dropped = 0;
      this.messages++;
      this.records += records.length;
    } catch (err) {
      // Back to the front, still bounded: the next interval tries again.
      this.queue.unshift(...records);
      if (this.queue.length > this.opts.maxQueue) {
        this.dropped += this.queue.length - this.opts.maxQueue;
        this.queue.splice(0, this.queue.length - this.opts.maxQueue);
      }
      this.opts.logger.warn(
        { err: errorMessage(err), records: records.length },
        "audit batch not sent; retrying",
      );
    } finally {
      this.sending = false;
      this.schedule();
    }
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
