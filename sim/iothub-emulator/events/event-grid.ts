/**
 * IoT Hub's `Microsoft.Devices.DeviceCreated` / `DeviceDeleted` events in the Event Grid schema,
 * POSTed to a webhook. Delivery runs beside the REST call (never blocks it), in order, with
 * exponential retry like Event Grid's; events that exhaust their retries are counted and dropped.
 */

import { randomUUID } from "node:crypto";
import { backoffDelay } from "../../../lib/backoff.ts";
import type { Logger } from "../../../lib/log.ts";
import type { JsonObject } from "../state/json.ts";

export type DeviceEventType = "Microsoft.Devices.DeviceCreated" | "Microsoft.Devices.DeviceDeleted";

export interface EventGridEvent {
  id: string;
  topic: string;
  subject: string;
  eventType: DeviceEventType;
  eventTime: string;
  data: JsonObject;
  dataVersion: string;
  metadataVersion: string;
}

/** Builds the event as IoT Hub publishes it: `data` = `{twin, hubName, deviceId}`. */
export function deviceEvent(eventType: DeviceEventType, hubName: string, twin: JsonObject): EventGridEvent {
  const deviceId = String(twin.deviceId);
  return {
    id: randomUUID(),
    topic: `/SUBSCRIPTIONS/00000000-0000-0000-0000-000000000000/RESOURCEGROUPS/EMULATOR/PROVIDERS/MICROSOFT.DEVICES/IOTHUBS/${hubName.toUpperCase()}`,
    subject: `devices/${deviceId}`,
    eventType,
    eventTime: new Date().toISOString(),
    data: { twin, hubName, deviceId },
    dataVersion: "",
    metadataVersion: "1",
  };
}

export interface EventDeliveryStats {
  delivered: number;
  failedAttempts: number;
  dropped: number;
  pending: number;
}

export class EventGridPublisher {
  private readonly url: string;
  private readonly log: Logger;
  private readonly maxAttempts: number;
  private readonly baseDelayMs: number;
  private readonly queue: EventGridEvent[] = [];
  private running = false;
  private closed = false;
  private wake: (() => void) | undefined;
  readonly stats: EventDeliveryStats = { delivered: 0, failedAttempts: 0, dropped: 0, pending: 0 };

  constructor(url: string, log: Logger, opts: { maxAttempts?: number; baseDelayMs?: number } = {}) {
    this.url = url;
    this.log = log;
    this.maxAttempts = opts.maxAttempts ?? 8;
    this.baseDelayMs = opts.baseDelayMs ?? 250;
  }

  publish(event: EventGridEvent): void {
    if (this.closed) return;
    this.queue.push(event);
    this.stats.pending = this.queue.length;
    if (!this.running) void this.run();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }

  private async run(): Promise<void> {
    this.running = true;
    while (this.queue.length > 0 && !this.closed) {
      const event = this.queue[0]!;
      let ok = false;
      for (let attempt = 1; attempt <= this.maxAttempts && !this.closed; attempt++) {
        try {
          const res = await fetch(this.url, {
            method: "POST",
            headers: { "content-type": "application/json", "aeg-event-type": "Notification" },
            body: JSON.stringify([event]),
            signal: AbortSignal.timeout(10_000),
          });
          await res.arrayBuffer().catch(() => undefined);
          if (res.ok) {
            ok = true;
            break;
          }
          this.log.warn(
            { status: res.status, eventType: event.eventType },
            "Event Grid webhook refused event",
          );
        } catch (err) {
          this.log.warn({ err, eventType: event.eventType }, "Event Grid webhook unreachable");
        }
        this.stats.failedAttempts++;
        // Event Grid randomises its retry steps a little; the project's backoff does the same.
        await this.sleep(
          backoffDelay({ initialMs: this.baseDelayMs, maxMs: 30_000, jitter: 0.2 }, attempt - 1),
        );
      }
      this.queue.shift();
      this.stats.pending = this.queue.length;
      if (ok) this.stats.delivered++;
      else this.stats.dropped++;
    }
    this.running = false;
  }

  /** Stops delivering (pending events are dropped). */
  close(): void {
    this.closed = true;
    this.wake?.();
  }
}
