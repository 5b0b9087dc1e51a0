/**
 * The hub's identity registry: devices and modules with their keys, as `PUT/GET/DELETE
 * /devices/…` and the library API change them. Every operation validates fully before it changes
 * a record, so a rejected request never changes state; a key change or a deletion announces
 * `identityRevoked` so the identity's live connections go.
 */
import { generateKey } from "./auth.ts";
import { HubError, hubErrors } from "./errors.ts";
import { etagMatches, type HubCore, requireObject } from "./hub-core.ts";
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
import { replaceDesired, updateTags } from "./state/twin-doc.ts";

/** System modules the hub creates with every edge device. */
export const EDGE_SYSTEM_MODULES = ["$edgeAgent", "$edgeHub"] as const;

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

/** `PUT /devices/{id}`: create (no If-Match) or update (If-Match). */
export function putDevice(
  hub: HubCore,
  deviceId: string,
  bodyIn: unknown,
  ifMatch?: string,
): { device: JsonObject; created: boolean } {
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
  const existing = hub.store.devices.get(deviceId);
  if (!existing) {
    if (ifMatch !== undefined && ifMatch !== "") throw hubErrors.deviceNotFound(deviceId);
    return { device: renderDevice(createDevice(hub, deviceId, { keys, iotEdge, status })), created: true };
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
    if (iotEdge) addSystemModules(existing);
  }
  existing.etagCounter += 1;
  if (keysChanged || existing.status === "disabled") hub.emit("identityRevoked", { deviceId });
  if (edgeChanged) hub.emit("deviceTargetingChanged", deviceId);
  hub.commit();
  return { device: renderDevice(existing), created: false };
}

/**
 * Creates a device, optionally with an initial twin (tags, desired) the way DPS does, then
 * announces it (Event Grid `DeviceCreated`, configurations).
 */
export function createDevice(
  hub: HubCore,
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
  if (hub.store.devices.has(deviceId))
    throw new HubError("DeviceAlreadyExists", `A device with ID '${deviceId}' is already registered`);
  const rec = newDeviceRecord(
    deviceId,
    opts.keys ?? { primaryKey: generateKey(), secondaryKey: generateKey() },
    opts.iotEdge ?? false,
    opts.status ?? "enabled",
  );
  if (opts.tags) updateTags(rec.twin, opts.tags, true);
  if (opts.desired) replaceDesired(rec.twin, opts.desired);
  if (rec.iotEdge) addSystemModules(rec);
  hub.store.devices.set(deviceId, rec);
  hub.commit();
  hub.emit("deviceCreated", renderTwin(rec));
  hub.emit("deviceTargetingChanged", deviceId);
  return rec;
}

/** The system modules every edge device has; made with keys of their own. */
function addSystemModules(dev: DeviceRecord): void {
  for (const m of EDGE_SYSTEM_MODULES) {
    dev.modules[m] ??= newModuleRecord(dev.deviceId, m, {
      primaryKey: generateKey(),
      secondaryKey: generateKey(),
    });
  }
}

export function deleteDevice(hub: HubCore, deviceId: string, ifMatch?: string): void {
  const rec = hub.device(deviceId);
  if (!etagMatches(ifMatch, renderDevice(rec).etag as string))
    throw hubErrors.precondition(`device ${deviceId}`);
  const twin = renderTwin(rec);
  hub.store.devices.delete(deviceId);
  hub.emit("identityRevoked", { deviceId });
  hub.commit();
  hub.emit("deviceDeleted", twin);
}

// ---- modules -------------------------------------------------------------------------------

export function putModule(
  hub: HubCore,
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
  const dev = hub.device(deviceId);
  const existing = dev.modules[moduleId];
  if (!existing) {
    if (ifMatch !== undefined && ifMatch !== "") throw hubErrors.moduleNotFound(deviceId, moduleId);
    const rec = createModule(
      hub,
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
    if (changed) hub.emit("identityRevoked", { deviceId, moduleId });
  }
  if (typeof body.managedBy === "string") existing.managedBy = body.managedBy;
  existing.etagCounter += 1;
  hub.commit();
  return { module: renderModule(existing), created: false };
}

/** Creates a module identity (50 per device at most). */
export function createModule(
  hub: HubCore,
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
  hub.commit();
  return rec;
}

export function deleteModule(hub: HubCore, deviceId: string, moduleId: string, ifMatch?: string): void {
  const dev = hub.device(deviceId);
  const rec = hub.module(deviceId, moduleId);
  if (!etagMatches(ifMatch, renderModule(rec).etag as string))
    throw hubErrors.precondition(`module ${deviceId}/${moduleId}`);
  delete dev.modules[moduleId];
  hub.emit("identityRevoked", { deviceId, moduleId });
  hub.commit();
}

export function getDevice(hub: HubCore, deviceId: string): JsonObject {
  return renderDevice(hub.device(deviceId));
}

export function listDevices(hub: HubCore, top = 1000): JsonObject[] {
  return [...hub.store.devices.values()].slice(0, top).map(renderDevice);
}

export function getModule(hub: HubCore, deviceId: string, moduleId: string): JsonObject {
  return renderModule(hub.module(deviceId, moduleId));
}

export function listModules(hub: HubCore, deviceId: string): JsonObject[] {
  return Object.values(hub.device(deviceId).modules).map(renderModule);
}
