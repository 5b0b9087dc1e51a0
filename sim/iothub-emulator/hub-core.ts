/**
 * What the hub's identity and twin operations share: the events the hub announces, and the core
 * they work on (the store, the lookups that answer 404, and `commit`). The operations live in
 * identity-operations.ts and twin-operations.ts; hub.ts puts them behind one class.
 */
import type { EventEmitter } from "node:events";
import { hubErrors } from "./errors.ts";
import type { DeviceRecord, ModuleRecord } from "./state/identities.ts";
import { isJsonObject, type JsonObject } from "./state/json.ts";
import type { HubStore } from "./state/store.ts";

export interface DesiredChange {
  deviceId: string;
  moduleId?: string;
  patch: JsonObject;
  version: number;
}

export interface HubEvents {
  desired: [DesiredChange];
  deviceCreated: [JsonObject];
  deviceDeleted: [JsonObject];
  /** A device's twin tags or capabilities changed (configurations re-evaluate it). */
  deviceTargetingChanged: [string];
  /** An identity was deleted or its keys changed: its live connections must go. */
  identityRevoked: [{ deviceId: string; moduleId?: string }];
  changed: [];
}

/** The hub as its operations see it: its store, its lookups and its events. */
export interface HubCore extends EventEmitter<HubEvents> {
  readonly store: HubStore;
  /** The device record; 404 (DeviceNotFound) when there is none. */
  device(deviceId: string): DeviceRecord;
  /** The module record; 404 (ModuleNotFound) when there is none. */
  module(deviceId: string, moduleId: string): ModuleRecord;
  /** Marks the store for writing and announces `changed` (after a change is complete). */
  commit(): void;
}

/** Compares an `If-Match` header with the current etag (`*` and quotes allowed). */
export function etagMatches(ifMatch: string | undefined, current: string): boolean {
  if (ifMatch === undefined || ifMatch === "") return true;
  const value = ifMatch
    .trim()
    .replace(/^W\//, "")
    .replace(/^"(.*)"$/, "$1");
  return value === "*" || value === current;
}

/** The body as a JSON object, or 400 naming what it should have been. */
export function requireObject(body: unknown, what: string): JsonObject {
  if (!isJsonObject(body)) throw hubErrors.badRequest(`${what} must be a JSON object`);
  return body;
}
