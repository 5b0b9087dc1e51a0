/**
 * Device-to-cloud messages (telemetry and module output events) the hub received, kept for
 * assertions in tests and for the simulation's status views. Bounded: the oldest go first.
 */
import { EventEmitter } from "node:events";
import type { Json } from "./state/json.ts";

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

/**
 * One kept message in the JSON shape IoT Hub's message routing writes to a storage container
 * (`EnqueuedTimeUtc`, `Properties`, `SystemProperties`, `Body`), so a reader parses the emulator's
 * messages and the blobs of a deployed hub alike. As with routing, `Body` is the JSON value only
 * when the message says `contentType: application/json` and `contentEncoding: utf-8`; otherwise
 * it is the body in base64.
 */
export interface RoutedMessage {
  EnqueuedTimeUtc: string;
  Properties: Record<string, string>;
  SystemProperties: Record<string, string>;
  Body: Json;
}

const SYSTEM_PROPERTY_NAMES: Record<string, string> = {
  "$.ct": "contentType",
  "$.ce": "contentEncoding",
  "$.mid": "messageId",
  "$.cid": "correlationId",
};

export function routedMessage(m: TelemetryMessage): RoutedMessage {
  const enqueued = new Date(m.receivedAt).toISOString();
  const system: Record<string, string> = { connectionDeviceId: m.deviceId };
  if (m.moduleId !== undefined) system.connectionModuleId = m.moduleId;
  const app: Record<string, string> = {};
  for (const [k, v] of Object.entries(m.properties)) {
    if (!k.startsWith("$.")) app[k] = v;
    else if (SYSTEM_PROPERTY_NAMES[k]) system[SYSTEM_PROPERTY_NAMES[k]] = v;
  }
  system.enqueuedTime = enqueued;
  let body: Json = m.body.toString("base64");
  if (/json/i.test(system.contentType ?? "") && /^utf-?8$/i.test(system.contentEncoding ?? "")) {
    try {
      body = JSON.parse(m.body.toString("utf8")) as Json;
    } catch {
      // Not JSON after all: routing keeps such a body as base64 too.
    }
  }
  return { EnqueuedTimeUtc: enqueued, Properties: app, SystemProperties: system, Body: body };
}
