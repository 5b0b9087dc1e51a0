/**
 * The emulated hub's registry and twin operations: what REST routes, MQTT handlers and the library
 * API all call. Every operation validates fully on a copy and commits at the end, so a rejected
 * request never changes state. Changes are announced as events (desired patches for connected
 * clients, device lifecycle for Event Grid and configurations, `changed` for persistence).
 */
import { EventEmitter } from "node:events";
import { generateKey } from "./auth.ts";
import { HubError, hubErrors } from "./errors.ts";
import {
  type DeviceRecord,
  type ModuleRecord,
  newDeviceRecord,
  newModuleRecord,
  renderDevice,
  renderModule,
  renderTwin,
} from "./state/identities.ts";
import { isJsonObject, type JsonObject } from "./state/json.ts";
import { checkId, MAX_MODULES_PER_DEVICE } from "./state/limits.ts";
import type { HubStore } from "./state/store.ts";
import {
  patchSection,
  replaceDesired,
  stripReadOnly,
  type TwinDoc,
  twinEtag,
  updateTags,
} from "./state/twin-doc.ts";

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

/** System modules the hub creates with every edge device. */
export const EDGE_SYSTEM_MODULES = ["$edgeAgent", "$edgeHub"] as const;

/** Compares an `If-Match` header with the current etag (`*` and quotes allowed). */
export function etagMatches(ifMatch: string | undefined, current: string): boolean {
  if (ifMatch === undefined || ifMatch === "") return true;
  const value = ifMatch
    .trim()
    .replace(/^W\//, "")
    .replace(/^"(.*)"$/, "$1");
  return value === "*" || value === current;
}

function readKeys(body: JsonObject): { primaryKey: string; secondaryKey: string } | undefined {
  const auth = body.authentication;
  if (auth === undefined || auth === null) return undefined;
  if (!isJsonObject(auth)) throw hubErrors.badRequest("authentication must be an object");
  if (auth.type !== undefined && auth.type !== "sas")
    throw hubErrors.badRequest(`authentication type '${String(auth.type)}' is not supported by the emulator`);
  const sym = auth.symmetricKey;
  if (sym === undefined || sym === null) return undefined;
  if (!isJsonObject(sym)) throw hubErrors.badRequest("authentication.symmetricKey must be an object");
  const pick = (v: unknown, name: string) => {
    if (v === undefined || v === null || v === "") return generateKey();
    if (typeof v !== "string" || !/^[A-Za-z0-9+/]{22,86}={0,2}$/.test(v))
      throw hubErrors.badRequest(`${name} must be a base64 key of 16 to 64 bytes`);
    return v;
  };
  return {
    primaryKey: pick(sym.primaryKey, "primaryKey"),
    secondaryKey: pick(sym.secondaryKey, "secondaryKey"),
  };
}

function requireObject(body: unknown, what: string): JsonObject {
  if (!isJsonObject(body)) throw hubErrors.badRequest(`${what} must be a JSON object`);
  return body;
}

export class Hub extends EventEmitter<HubEvents> {
  readonly hostName: string;
  readonly store: HubStore;

  constructor(store: HubStore, hostName: string) {
    super();
    this.store = store;
    this.hostName = hostName;
  }

  private commit(): void {
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

  // ---- devices -------------------------------------------------------------------------------

  /** `PUT /devices/{id}`: create (no If-Match) or update (If-Match). */
  putDevice(deviceId: string, bodyIn: unknown, ifMatch?: string): { device: JsonObject; created: boolean } {
    checkId(deviceId, "deviceId");
    const body = requireObject(bodyIn, "device");
    if (body.deviceId !== undefined && body.deviceId !== deviceId)
      throw hubErrors.badRequest("deviceId in the body does not match the URL");
    const caps = body.capabilities;
    if (caps !== undefined && caps !== null && !isJsonObject(caps))
      throw hubErrors.badRequest("capabilities must be an object");
    const iotEdge = isJsonObject(caps) ? caps.iotEdge === true : undefined;
    const status = body.status;
    if (status !== undefined && status !== "enabled" && status !== "disabled")
      throw hubErrors.badRequest("status must be 'enabled' or 'disabled'");
    const keys = readKeys(body);
    const existing = this.store.devices.get(deviceId);
    if (!existing) {
      if (ifMatch !== undefined && ifMatch !== "") throw hubErrors.deviceNotFound(deviceId);
      return { device: renderDevice(this.createDevice(deviceId, { keys, iotEdge, status })), created: true };
    }
    if (ifMatch === undefined || ifMatch === "")
      throw new HubError("DeviceAlreadyExists", `A device with ID '${deviceId}' is already registered`);
    if (!etagMatches(ifMatch, renderDevice(existing).etag as string))
      throw hubErrors.precondition(`device ${deviceId}`);
    const keysChanged =
      keys !== undefined &&
      (keys.primaryKey !== existing.primaryKey || keys.secondaryKey !== existing.secondaryKey);
    if (keys) Object.assign(existing, keys);
    if (status !== undefined && status !== existing.status) {
      existing.status = status;
      existing.statusUpdatedTime = new Date().toISOString();
    }
    const edgeChanged = iotEdge !== undefined && iotEdge !== existing.iotEdge;
    if (edgeChanged) {
      existing.iotEdge = iotEdge;
      if (iotEdge) this.addSystemModules(existing);
    }
    existing.etagCounter += 1;
    if (keysChanged || existing.status === "disabled") this.emit("identityRevoked", { deviceId });
    if (edgeChanged) this.emit("deviceTargetingChanged", deviceId);
    this.commit();
    return { device: renderDevice(existing), created: false };
  }

  /**
   * Creates a device, optionally with an initial twin (tags, desired) the way DPS does, then
   * announces it (Event Grid `DeviceCreated`, configurations).
   */
  createDevice(
    deviceId: string,
    opts: {
      keys?: { primaryKey: string; secondaryKey: string } | undefined;
      iotEdge?: boolean | undefined;
      status?: "enabled" | "disabled" | undefined;
      tags?: JsonObject;
      desired?: JsonObject;
    } = {},
  ): DeviceRecord {
    checkId(deviceId, "deviceId");
    if (this.store.devices.has(deviceId))
      throw new HubError("DeviceAlreadyExists", `A device with ID '${deviceId}' is already registered`);
    const rec = newDeviceRecord(
      deviceId,
      opts.keys ?? { primaryKey: generateKey(), secondaryKey: generateKey() },
      opts.iotEdge ?? false,
      opts.status ?? "enabled",
    );
    if (opts.tags) updateTags(rec.twin, opts.tags, true);
    if (opts.desired) replaceDesired(rec.twin, opts.desired);
    if (rec.iotEdge) this.addSystemModules(rec);
    this.store.devices.set(deviceId, rec);
    this.commit();
    this.emit("deviceCreated", renderTwin(rec));
    this.emit("deviceTargetingChanged", deviceId);
    return rec;
  }

  private addSystemModules(dev: DeviceRecord): void {
    for (const m of EDGE_SYSTEM_MODULES) {
      dev.modules[m] ??= newModuleRecord(dev.deviceId, m, {
        primaryKey: generateKey(),
        secondaryKey: generateKey(),
      });
    }
  }

  getDevice(deviceId: string): JsonObject {
    return renderDevice(this.device(deviceId));
  }

  listDevices(top = 1000): JsonObject[] {
    return [...this.store.devices.values()].slice(0, top).map(renderDevice);
  }

  deleteDevice(deviceId: string, ifMatch?: string): void {
    const rec = this.device(deviceId);
    if (!etagMatches(ifMatch, renderDevice(rec).etag as string))
      throw hubErrors.precondition(`device ${deviceId}`);
    const twin = renderTwin(rec);
    this.store.devices.delete(deviceId);
    this.emit("identityRevoked", { deviceId });
    this.commit();
    this.emit("deviceDeleted", twin);
  }

  // ---- modules -------------------------------------------------------------------------------

  putModule(
    deviceId: string,
    moduleId: string,
    bodyIn: unknown,
    ifMatch?: string,
  ): { module: JsonObject; created: boolean } {
    checkId(moduleId, "moduleId");
    const body = requireObject(bodyIn, "module");
    if (body.moduleId !== undefined && body.moduleId !== moduleId)
      throw hubErrors.badRequest("moduleId in the body does not match the URL");
    if (body.deviceId !== undefined && body.deviceId !== deviceId)
      throw hubErrors.badRequest("deviceId in the body does not match the URL");
    if (body.managedBy !== undefined && body.managedBy !== null && typeof body.managedBy !== "string")
      throw hubErrors.badRequest("managedBy must be a string");
    const keys = readKeys(body);
    const dev = this.device(deviceId);
    const existing = dev.modules[moduleId];
    if (!existing) {
      if (ifMatch !== undefined && ifMatch !== "") throw hubErrors.moduleNotFound(deviceId, moduleId);
      const rec = this.createModule(
        dev,
        moduleId,
        keys,
        typeof body.managedBy === "string" ? body.managedBy : "",
      );
      return { module: renderModule(rec), created: true };
    }
    if (ifMatch === undefined || ifMatch === "")
      throw new HubError(
        "ModuleAlreadyExistsOnDevice",
        `A module with ID '${moduleId}' is already registered on device '${deviceId}'`,
      );
    if (!etagMatches(ifMatch, renderModule(existing).etag as string))
      throw hubErrors.precondition(`module ${deviceId}/${moduleId}`);
    if (keys) {
      const changed = keys.primaryKey !== existing.primaryKey || keys.secondaryKey !== existing.secondaryKey;
      Object.assign(existing, keys);
      if (changed) this.emit("identityRevoked", { deviceId, moduleId });
    }
    if (typeof body.managedBy === "string") existing.managedBy = body.managedBy;
    existing.etagCounter += 1;
    this.commit();
    return { module: renderModule(existing), created: false };
  }

  /** Creates a module identity (50 per device at most). */
  createModule(
    dev: DeviceRecord,
    moduleId: string,
    keys?: { primaryKey: string; secondaryKey: string },
    managedBy = "",
  ): ModuleRecord {
    checkId(moduleId, "moduleId");
    if (Object.keys(dev.modules).length >= MAX_MODULES_PER_DEVICE)
      throw new HubError(
        "IotHubQuotaExceeded",
        `Device '${dev.deviceId}' already has ${MAX_MODULES_PER_DEVICE} modules, the maximum`,
      );
    const rec = newModuleRecord(
      dev.deviceId,
      moduleId,
      keys ?? { primaryKey: generateKey(), secondaryKey: generateKey() },
      managedBy,
    );
    dev.modules[moduleId] = rec;
    this.commit();
    return rec;
  }

  getModule(deviceId: string, moduleId: string): JsonObject {
    return renderModule(this.module(deviceId, moduleId));
  }

  listModules(deviceId: string): JsonObject[] {
    return Object.values(this.device(deviceId).modules).map(renderModule);
  }

  deleteModule(deviceId: string, moduleId: string, ifMatch?: string): void {
    const dev = this.device(deviceId);
    const rec = this.module(deviceId, moduleId);
    if (!etagMatches(ifMatch, renderModule(rec).etag as string))
      throw hubErrors.precondition(`module ${deviceId}/${moduleId}`);
    delete dev.modules[moduleId];
    this.emit("identityRevoked", { deviceId, moduleId });
    this.commit();
  }

  // ---- twins ---------------------------------------------------------------------------------

  private twinOwner(
    deviceId: string,
    moduleId?: string,
  ): { dev: DeviceRecord; rec: DeviceRecord | ModuleRecord } {
    const dev = this.device(deviceId);
    return { dev, rec: moduleId === undefined ? dev : this.module(deviceId, moduleId) };
  }

  getTwin(deviceId: string, moduleId?: string): JsonObject {
    const { dev } = this.twinOwner(deviceId, moduleId);
    return renderTwin(dev, moduleId === undefined ? undefined : this.module(deviceId, moduleId));
  }

  /**
   * `PATCH` (merge) or `PUT` (replace) of a twin from the service: tags and desired only.
   * Desired changes are pushed to a connected client as a patch with `$version`.
   */
  updateTwin(
    deviceId: string,
    moduleId: string | undefined,
    bodyIn: unknown,
    ifMatch: string | undefined,
    mode: "patch" | "replace",
  ): JsonObject {
    const { dev, rec } = this.twinOwner(deviceId, moduleId);
    const body = requireObject(bodyIn, "twin");
    if (!etagMatches(ifMatch, twinEtag(rec.twin)))
      throw hubErrors.precondition(`the twin of ${moduleId ? `${deviceId}/${moduleId}` : deviceId}`);
    const draft: TwinDoc = structuredClone(rec.twin);
    let tagsChanged = false;
    let desiredPatch: JsonObject = {};
    const tags = body.tags;
    if (tags !== undefined && tags !== null) {
      tagsChanged = updateTags(draft, requireObject(tags, "tags"), mode === "replace");
    } else if (mode === "replace") {
      tagsChanged = updateTags(draft, {}, true);
    }
    const props = body.properties;
    if (props !== undefined && props !== null) {
      const p = requireObject(props, "properties");
      const reported = p.reported;
      if (
        reported !== undefined &&
        reported !== null &&
        (!isJsonObject(reported) || Object.keys(stripReadOnly(reported)).length > 0)
      )
        throw hubErrors.badRequest("reported properties can only be written by the device or module");
      const desired = p.desired;
      if (desired !== undefined && desired !== null) {
        const d = stripReadOnly(requireObject(desired, "properties.desired"));
        desiredPatch = mode === "replace" ? replaceDesired(draft, d) : patchSection(draft, "desired", d);
      } else if (mode === "replace") {
        desiredPatch = replaceDesired(draft, {});
      }
    } else if (mode === "replace") {
      desiredPatch = replaceDesired(draft, {});
    }
    rec.twin = draft;
    this.commit();
    if (Object.keys(desiredPatch).length > 0) {
      this.emit("desired", {
        deviceId,
        ...(moduleId === undefined ? {} : { moduleId }),
        patch: desiredPatch,
        version: draft.desiredVersion,
      });
    }
    if (tagsChanged && moduleId === undefined) this.emit("deviceTargetingChanged", deviceId);
    return renderTwin(dev, moduleId === undefined ? undefined : this.module(deviceId, moduleId));
  }

  /** Replaces a module's (or device's) desired properties wholesale: configurations use this. */
  setDesired(deviceId: string, moduleId: string | undefined, desired: JsonObject): void {
    const { rec } = this.twinOwner(deviceId, moduleId);
    const draft = structuredClone(rec.twin);
    const patch = replaceDesired(draft, desired);
    if (Object.keys(patch).length === 0) return;
    rec.twin = draft;
    this.commit();
    this.emit("desired", {
      deviceId,
      ...(moduleId === undefined ? {} : { moduleId }),
      patch,
      version: draft.desiredVersion,
    });
  }

  /** A reported-properties patch from the device or module (MQTT). Returns the new `$version`. */
  reportProperties(deviceId: string, moduleId: string | undefined, patchIn: unknown): number {
    const { rec } = this.twinOwner(deviceId, moduleId);
    const patch = requireObject(patchIn, "reported properties patch");
    const draft = structuredClone(rec.twin);
    patchSection(draft, "reported", patch);
    rec.twin = draft;
    rec.lastActivityTime = new Date().toISOString();
    this.commit();
    return draft.reportedVersion;
  }

  /** The `{desired, reported}` body of an MQTT twin GET (no `$metadata`, like the hub). */
  twinProperties(deviceId: string, moduleId?: string): JsonObject {
    const { rec } = this.twinOwner(deviceId, moduleId);
    return {
      desired: { ...rec.twin.desired, $version: rec.twin.desiredVersion },
      reported: { ...rec.twin.reported, $version: rec.twin.reportedVersion },
    };
  }

  setConnectionState(deviceId: string, moduleId: string | undefined, connected: boolean): void {
    const dev = this.store.devices.get(deviceId);
    const rec = dev && (moduleId === undefined ? dev : dev.modules[moduleId]);
    if (!rec) return;
    const now = new Date().toISOString();
    rec.connectionState = connected ? "Connected" : "Disconnected";
    rec.connectionStateUpdatedTime = now;
    rec.lastActivityTime = now;
  }
}
