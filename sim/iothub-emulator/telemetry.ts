/**
 * Device-to-cloud messages (telemetry and module output events) the hub received, kept for
 * assertions in tests and for the simulation's status views. Bounded: the oldest go first.
 */
import { EventEmitter } from "node:events";

export interface TelemetryMessage {
  deviceId: string;
  moduleId?: string;
  /** `$.on` of an output event (`sendOutputEvent(name, …)`). */
  outputName?: string;
  /** Decoded property bag (system properties keep their `$.` prefix). */
  properties: Record<string, string>;
  body: Buffer;
  receivedAt: number;
}

export class TelemetryLog extends EventEmitter<{ message: [TelemetryMessage] }> {
  private readonly items: TelemetryMessage[] = [];
  private readonly max: number;

  constructor(max = 1000) {
    super();
    this.max = max;
  }

  record(message: TelemetryMessage): void {
    this.items.push(message);
    if (this.items.length > this.max) this.items.splice(0, this.items.length - this.max);
    this.emit("message", message);
  }

  /** Messages received so far, optionally only from one identity. */
  list(filter: { deviceId?: string; moduleId?: string } = {}): TelemetryMessage[] {
    return this.items.filter(
      (m) =>
        (filter.deviceId === undefined || m.deviceId === filter.deviceId) &&
        (filter.moduleId === undefined || m.moduleId === filter.moduleId),
    );
  }

  clear(): void {
    this.items.length = 0;
  }
}
