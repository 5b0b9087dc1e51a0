/**
 * Device and module identity records, and their JSON renderings exactly as the service REST API
 * returns them (`Device`, `Module`, `Twin`; iothub-protocol.md §3 "JSON shapes").
 */
import { randomInt } from "node:crypto";
import type { JsonObject } from "./json.ts";
import { newTwinDoc, renderProperties, type TwinDoc, twinEtag } from "./twin-doc.ts";

const NEVER = "0001-01-01T00:00:00Z";

interface IdentityBase {
  deviceId: string;
  generationId: string;
  /** Identity etag counter (rendered as base64 of its decimal text, like `MQ==`). */
  etagCounter: number;
  primaryKey: string;
  secondaryKey: string;
  connectionState: "Connected" | "Disconnected";
  connectionStateUpdatedTime: string;
  lastActivityTime: string;
  twin: TwinDoc;
}

export interface ModuleRecord extends IdentityBase {
  moduleId: string;
  managedBy: string;
}

export interface DeviceRecord extends IdentityBase {
  status: "enabled" | "disabled";
  statusReason: string | null;
  statusUpdatedTime: string;
  iotEdge: boolean;
  createdTime: string;
  modules: Record<string, ModuleRecord>;
  /** Fingerprint (ids + etags) of the configurations last applied, so unchanged ones aren't re-applied. */
  appliedConfigurations?: string;
  /** The twin's `configurations`: each matching configuration, targeted or applied (IoT Hub's shape). */
  configurations?: Record<string, { status: "targeted" | "applied" }>;
}

/** Generation ids look like `638000000000000001`: 18 digits, unique per identity incarnation. */
export function newGenerationId(): string {
  return `63${String(Date.now()).padStart(13, "0")}${String(randomInt(1000)).padStart(3, "0")}`;
}

export function identityEtag(counter: number): string {
  return Buffer.from(String(counter)).toString("base64");
}

function authentication(rec: IdentityBase): JsonObject {
  return {
    symmetricKey: { primaryKey: rec.primaryKey, secondaryKey: rec.secondaryKey },
    x509Thumbprint: { primaryThumbprint: null, secondaryThumbprint: null },
    type: "sas",
  };
}

export function newDeviceRecord(
  deviceId: string,
  keys: { primaryKey: string; secondaryKey: string },
  iotEdge: boolean,
  status: "enabled" | "disabled" = "enabled",
): DeviceRecord {
  const now = new Date().toISOString();
  return {
    deviceId,
    generationId: newGenerationId(),
    etagCounter: 1,
    ...keys,
    connectionState: "Disconnected",
    connectionStateUpdatedTime: NEVER,
    lastActivityTime: NEVER,
    twin: newTwinDoc(now),
    status,
    statusReason: null,
    statusUpdatedTime: NEVER,
    iotEdge,
    createdTime: now,
    modules: {},
  };
}

export function newModuleRecord(
  deviceId: string,
  moduleId: string,
  keys: { primaryKey: string; secondaryKey: string },
  managedBy = "",
): ModuleRecord {
  return {
    deviceId,
    moduleId,
    managedBy,
    generationId: newGenerationId(),
    etagCounter: 1,
    ...keys,
    connectionState: "Disconnected",
    connectionStateUpdatedTime: NEVER,
    lastActivityTime: NEVER,
    twin: newTwinDoc(),
  };
}

export function renderDevice(rec: DeviceRecord): JsonObject {
  return {
    deviceId: rec.deviceId,
    generationId: rec.generationId,
    etag: identityEtag(rec.etagCounter),
    connectionState: rec.connectionState,
    status: rec.status,
    statusReason: rec.statusReason,
    connectionStateUpdatedTime: rec.connectionStateUpdatedTime,
    statusUpdatedTime: rec.statusUpdatedTime,
    lastActivityTime: rec.lastActivityTime,
    cloudToDeviceMessageCount: 0,
    authentication: authentication(rec),
    capabilities: { iotEdge: rec.iotEdge },
    deviceScope: rec.iotEdge ? `ms-azure-iot-edge://${rec.deviceId}-${rec.generationId}` : "",
    parentScopes: [],
  };
}

export function renderModule(rec: ModuleRecord): JsonObject {
  return {
    moduleId: rec.moduleId,
    managedBy: rec.managedBy,
    deviceId: rec.deviceId,
    generationId: rec.generationId,
    etag: identityEtag(rec.etagCounter),
    connectionState: rec.connectionState,
    connectionStateUpdatedTime: rec.connectionStateUpdatedTime,
    lastActivityTime: rec.lastActivityTime,
    cloudToDeviceMessageCount: 0,
    authentication: authentication(rec),
  };
}

/** Device twin (no `moduleId`) or module twin (`moduleId`, no `capabilities`). */
export function renderTwin(device: DeviceRecord, module?: ModuleRecord, withMetadata = true): JsonObject {
  const rec = module ?? device;
  const twin: JsonObject = {
    deviceId: device.deviceId,
    ...(module ? { moduleId: module.moduleId } : {}),
    etag: twinEtag(rec.twin),
    deviceEtag: identityEtag(rec.etagCounter),
    status: device.status,
    statusUpdateTime: device.statusUpdatedTime,
    connectionState: rec.connectionState,
    lastActivityTime: rec.lastActivityTime,
    cloudToDeviceMessageCount: 0,
    authenticationType: "sas",
    x509Thumbprint: { primaryThumbprint: null, secondaryThumbprint: null },
    modelId: "",
    version: rec.twin.version,
    tags: rec.twin.tags,
    properties: renderProperties(rec.twin, withMetadata),
  };
  if (!module) {
    twin.capabilities = { iotEdge: device.iotEdge };
    twin.deviceScope = device.iotEdge ? `ms-azure-iot-edge://${device.deviceId}-${device.generationId}` : "";
    if (device.configurations && Object.keys(device.configurations).length > 0)
      twin.configurations = structuredClone(device.configurations);
  }
  return twin;
}
