/**
 * The emulated hub's registry and twin operations: what REST routes, MQTT handlers and the library
 * API all call. Every operation validates fully on a copy and commits at the end, so a rejected
 * request never changes state. Changes are announced as events (desired patches for connected
 * clients, device lifecycle for Event Grid and configurations, `changed` for persistence). The
 * identity operations are in identity-operations.ts and the twin operations in twin-operations.ts.
 */
import { EventEmitter } from "node:events";
import { hubErrors } from "./errors.ts";
import type { HubCore, HubEvents } from "./hub-core.ts";
import * as identities from "./identity-operations.ts";
import type { DeviceRecord, ModuleRecord } from "./state/identities.ts";
import type { JsonObject } from "./state/json.ts";
import type { HubStore } from "./state/store.ts";
import * as twins from "./twin-operations.ts";

export { type DesiredChange, etagMatches, type HubEvents } from "./hub-core.ts";
export { EDGE_SYSTEM_MODULES } from "./identity-operations.ts";

type Keys = { primaryKey: string; secondaryKey: string };

export class Hub extends EventEmitter<HubEvents> implements HubCore {
  readonly hostName: string;
  readonly store: HubStore;

  constructor(store: HubStore, hostName: string) {
    super();
    this.store = store;
    this.hostName = hostName;
  }

  commit(): void {
    this.store.markDirty();
    this.emit("changed");
  }

  device(deviceId: string): DeviceRecord {
    const rec = this.store.devices.get(deviceId);
    if (!rec) throw hubErrors.deviceNotFound(deviceId);
    return rec;
  }

  module(deviceId: string, moduleId: string): ModuleRecord {
    const rec = this.device(deviceId).modules[moduleId];
    if (!rec) throw hubErrors.moduleNotFound(deviceId, moduleId);
    return rec;
  }

  /** Keys that may sign a token for the identity; undefined when it does not exist or is disabled. */
  keysFor(deviceId: string, moduleId?: string): string[] | undefined {
    const dev = this.store.devices.get(deviceId);
    if (dev?.status !== "enabled") return undefined;
    const rec = moduleId === undefined ? dev : dev.modules[moduleId];
    return rec ? [rec.primaryKey, rec.secondaryKey] : undefined;
  }

  // ---- devices and modules (identity-operations.ts) --------------------------------------

  /** `PUT /devices/{id}`: create (no If-Match) or update (If-Match). */
  putDevice(deviceId: string, body: unknown, ifMatch?: string): { device: JsonObject; created: boolean } {
    return identities.putDevice(this, deviceId, body, ifMatch);
  }

  /** Creates a device, optionally with an initial twin (tags, desired) the way DPS does. */
  createDevice(deviceId: string, opts?: Parameters<typeof identities.createDevice>[2]): DeviceRecord {
    return identities.createDevice(this, deviceId, opts);
  }

  getDevice(deviceId: string): JsonObject {
    return identities.getDevice(this, deviceId);
  }

  listDevices(top = 1000): JsonObject[] {
    return identities.listDevices(this, top);
  }

  deleteDevice(deviceId: string, ifMatch?: string): void {
    identities.deleteDevice(this, deviceId, ifMatch);
  }

  putModule(
    deviceId: string,
    moduleId: string,
    body: unknown,
    ifMatch?: string,
  ): { module: JsonObject; created: boolean } {
    return identities.putModule(this, deviceId, moduleId, body, ifMatch);
  }

  /** Creates a module identity (50 per device at most). */
  createModule(dev: DeviceRecord, moduleId: string, keys?: Keys, managedBy = ""): ModuleRecord {
    return identities.createModule(this, dev, moduleId, keys, managedBy);
  }

  getModule(deviceId: string, moduleId: string): JsonObject {
    return identities.getModule(this, deviceId, moduleId);
  }

  listModules(deviceId: string): JsonObject[] {
    return identities.listModules(this, deviceId);
  }

  deleteModule(deviceId: string, moduleId: string, ifMatch?: string): void {
    identities.deleteModule(this, deviceId, moduleId, ifMatch);
  }

  // ---- twins (twin-operations.ts) ----------------------------------------------------------

  getTwin(deviceId: string, moduleId?: string): JsonObject {
    return twins.getTwin(this, deviceId, moduleId);
  }

  /** `PATCH` (merge) or `PUT` (replace) of a twin from the service: tags and desired only. */
  updateTwin(
    deviceId: string,
    moduleId: string | undefined,
    body: unknown,
    ifMatch: string | undefined,
    mode: "patch" | "replace",
  ): JsonObject {
    return twins.updateTwin(this, deviceId, moduleId, body, ifMatch, mode);
  }

  /** Replaces a module's (or device's) desired properties wholesale: configurations use this. */
  setDesired(deviceId: string, moduleId: string | undefined, desired: JsonObject): void {
    twins.setDesired(this, deviceId, moduleId, desired);
  }

  /** A reported-properties patch from the device or module (MQTT). Returns the new `$version`. */
  reportProperties(deviceId: string, moduleId: string | undefined, patch: unknown): number {
    return twins.reportProperties(this, deviceId, moduleId, patch);
  }

  /** The `{desired, reported}` body of an MQTT twin GET (no `$metadata`, like the hub). */
  twinProperties(deviceId: string, moduleId?: string): JsonObject {
    return twins.twinProperties(this, deviceId, moduleId);
  }

  setConnectionState(deviceId: string, moduleId: string | undefined, connected: boolean): void {
    twins.setConnectionState(this, deviceId, moduleId, connected);
  }
}
