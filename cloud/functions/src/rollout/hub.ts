/**
 * What rollout needs from IoT Hub, as a small interface over `azure-iothub`'s Registry (so unit
 * tests can fake it and the simulation and Azure use the same code). Errors are branched on
 * `response.statusCode`, as the newer hub error format breaks the SDK's error names.
 */
import type { Registry } from "azure-iothub";
import { RelayFleetError } from "../../../../lib/errors.ts";
import {
  BASE_DEPLOYMENT_PREFIX,
  deploymentFleetSize,
  FLEET_TARGET_CONDITION,
  readFleetTag,
} from "../../../../lib/fleet-deployment.ts";

export type JsonObject = { [key: string]: unknown };

export interface ModuleTwinView {
  deviceId: string;
  moduleId: string;
  desired: JsonObject;
  reported: JsonObject;
  /** `properties.desired.$version`. */
  desiredVersion: number;
  /** IoT Hub's view of the module's connection (`Connected` / `Disconnected`), when known. */
  connectionState?: string;
  /** Last time IoT Hub heard from the module (ISO), when known. */
  lastActivityTime?: string;
}

export interface FleetHub {
  /** undefined when the device does not exist. */
  getDevice(deviceId: string): Promise<{ deviceId: string; iotEdge: boolean } | undefined>;
  /** Creates an IoT Edge device, or turns an existing device into one (adopt). */
  ensureEdgeDevice(deviceId: string): Promise<void>;
  /**
   * Creates up to {@link MAX_BULK_DEVICES} IoT Edge devices in one bulk registry call (IoT Hub's
   * `POST /devices`); a device that already exists is reported, not changed (the onboarding that
   * follows adopts it as `ensureEdgeDevice` does). Other per-device refusals come back in
   * `failed`; a refused call as a whole (429, 5xx) throws and created nothing.
   */
  createEdgeDevices(deviceIds: readonly string[]): Promise<BulkCreateResult>;
  /** Deletes a device; absent is fine. */
  deleteDevice(deviceId: string): Promise<void>;
  /**
   * Creates the module identity unless it exists. `fresh`: the device was just created (it has no
   * modules yet), so the read before the create is skipped, one registry operation saved.
   */
  ensureModule(deviceId: string, moduleId: string, options?: { fresh?: boolean }): Promise<void>;
  getDeviceTags(deviceId: string): Promise<JsonObject | undefined>;
  /** Merge-patches the device twin tags (`null` deletes). */
  patchDeviceTags(deviceId: string, patch: JsonObject): Promise<void>;
  getModuleTwin(deviceId: string, moduleId: string): Promise<ModuleTwinView | undefined>;
  /** Merge-patches desired properties; returns the new desired `$version`. */
  patchModuleDesired(deviceId: string, moduleId: string, patch: JsonObject): Promise<number>;
  /** One query for every twin of a module id (all pages), never polled. */
  queryModuleTwins(moduleId: string): Promise<ModuleTwinView[]>;
  /**
   * One query (all pages) for every device the base deployment targets, with the site its fleet
   * tag names; for reconcile, never polled.
   */
  queryFleetDevices(): Promise<Array<{ deviceId: string; siteId?: string }>>;
  /**
   * The base deployment IoT Hub applies (the newest `relay-fleet-base-*`: they share a priority)
   * and the HUB_FLEET_SIZE it gives the modules (`null`: none, the module's default of 1); undefined
   * when there is no base deployment. One configurations read (20 a minute per S1 unit).
   */
  baseDeploymentFleetSize?(): Promise<{ id: string; fleetSize: number | null } | undefined>;
}

/** Most devices one bulk registry call may name (IoT Hub's limit). */
export const MAX_BULK_DEVICES = 100;

export interface BulkCreateResult {
  created: string[];
  existing: string[];
  failed: Array<{ deviceId: string; message: string }>;
}

/** The per-device errors of a bulk registry answer (BulkRegistryOperationResult), when it is one. */
function bulkErrors(
  responseBody: unknown,
): Array<{ deviceId: string; code: string; message: string }> | undefined {
  let body: unknown = responseBody;
  if (typeof body === "string") {
    try {
      body = JSON.parse(body);
    } catch {
      return undefined;
    }
  }
  const errors = asObject(body).errors;
  if (!Array.isArray(errors)) return undefined;
  return errors.map((e) => {
    const o = asObject(e);
    return {
      deviceId: String(o.deviceId ?? ""),
      code: String(o.errorCode ?? ""),
      message: String(o.errorStatus ?? o.errorCode ?? "refused"),
    };
  });
}

/** Status code of an azure-iothub error. */
export function hubStatus(err: unknown): number | undefined {
  const s = (err as { response?: { statusCode?: unknown } } | null)?.response?.statusCode;
  if (typeof s === "number") return s;
  const s2 = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof s2 === "number" ? s2 : undefined;
}

function wrap(what: string, err: unknown): RelayFleetError {
  const message = err instanceof Error ? err.message : String(err);
  const status = hubStatus(err);
  return new RelayFleetError(
    "RF_ERR_ROLLOUT_IOTHUB",
    `IoT Hub could not ${what}${status ? ` (HTTP ${status})` : ""}: ${message}`,
    { cause: err },
  );
}

function asObject(value: unknown): JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as JsonObject) : {};
}

function twinView(raw: unknown): ModuleTwinView {
  const t = asObject(raw);
  const props = asObject(t.properties);
  const desired = asObject(props.desired);
  return {
    deviceId: String(t.deviceId ?? ""),
    moduleId: String(t.moduleId ?? ""),
    desired,
    reported: asObject(props.reported),
    desiredVersion: typeof desired.$version === "number" ? desired.$version : 0,
    ...(typeof t.connectionState === "string" ? { connectionState: t.connectionState } : {}),
    ...(typeof t.lastActivityTime === "string" ? { lastActivityTime: t.lastActivityTime } : {}),
  };
}

/** Plain JSON of an SDK Twin / query row (the SDK's Twin objects carry a registry reference). */
function plain(value: unknown): unknown {
  const o = asObject(value);
  return {
    deviceId: o.deviceId,
    moduleId: o.moduleId,
    tags: o.tags,
    properties: o.properties,
    connectionState: o.connectionState,
    lastActivityTime: o.lastActivityTime,
  };
}

/** {@link FleetHub} over an `azure-iothub` Registry. */
export function createRegistryHub(registry: Registry, options: { queryPageSize?: number } = {}): FleetHub {
  const queryPageSize = options.queryPageSize ?? 1000;
  const hub: FleetHub = {
    async getDevice(deviceId) {
      try {
        const { responseBody } = await registry.get(deviceId);
        return { deviceId: responseBody.deviceId, iotEdge: responseBody.capabilities?.iotEdge === true };
      } catch (err) {
        if (hubStatus(err) === 404) return undefined;
        throw wrap(`read device ${deviceId}`, err);
      }
    },
    async ensureEdgeDevice(deviceId) {
      try {
        const { responseBody } = await registry.get(deviceId);
        if (responseBody.capabilities?.iotEdge === true) return;
        await registry.update({ deviceId, capabilities: { iotEdge: true } } as Registry.DeviceDescription);
        return;
      } catch (err) {
        if (hubStatus(err) !== 404) throw wrap(`read device ${deviceId}`, err);
      }
      try {
        await registry.create({
          deviceId,
          status: "enabled",
          capabilities: { iotEdge: true },
        } as Registry.DeviceDescription);
      } catch (err) {
        // Created by someone else in between (DPS, a concurrent onboarding): adopt it.
        if (hubStatus(err) === 409) return;
        throw wrap(`create device ${deviceId}`, err);
      }
    },
    async createEdgeDevices(deviceIds) {
      if (deviceIds.length === 0) return { created: [], existing: [], failed: [] };
      if (deviceIds.length > MAX_BULK_DEVICES)
        throw new RelayFleetError(
          "RF_ERR_ROLLOUT_INTERNAL",
          `A bulk registry call names at most ${MAX_BULK_DEVICES} devices (${deviceIds.length} given).`,
        );
      let errors: Array<{ deviceId: string; code: string; message: string }> = [];
      try {
        await registry.addDevices(
          deviceIds.map(
            (deviceId) =>
              ({
                deviceId,
                status: "enabled",
                capabilities: { iotEdge: true },
              }) as Registry.DeviceDescription,
          ),
        );
      } catch (err) {
        const perDevice =
          hubStatus(err) === 400 ? bulkErrors((err as { responseBody?: unknown }).responseBody) : undefined;
        if (!perDevice) throw wrap(`create ${deviceIds.length} devices`, err);
        errors = perDevice;
      }
      const result: BulkCreateResult = { created: [], existing: [], failed: [] };
      for (const deviceId of deviceIds) {
        const e = errors.find((x) => x.deviceId === deviceId);
        if (!e) result.created.push(deviceId);
        else if (e.code === "DeviceAlreadyExists") result.existing.push(deviceId);
        else result.failed.push({ deviceId, message: `${e.code}: ${e.message}` });
      }
      return result;
    },
    async deleteDevice(deviceId) {
      try {
        await registry.delete(deviceId);
      } catch (err) {
        if (hubStatus(err) !== 404) throw wrap(`delete device ${deviceId}`, err);
      }
    },
    async ensureModule(deviceId, moduleId, options = {}) {
      if (!options.fresh) {
        try {
          await registry.getModule(deviceId, moduleId);
          return;
        } catch (err) {
          if (hubStatus(err) !== 404) throw wrap(`read module ${deviceId}/${moduleId}`, err);
        }
      }
      try {
        // managedBy "IotEdge" so the edge agent treats the identity as its own when it deploys
        // the module (it creates missing ones itself; rollout creates it early to own the twin).
        await registry.addModule({ deviceId, moduleId, managedBy: "IotEdge" } as Parameters<
          Registry["addModule"]
        >[0]);
      } catch (err) {
        if (hubStatus(err) === 409) return;
        throw wrap(`create module ${deviceId}/${moduleId}`, err);
      }
    },
    async getDeviceTags(deviceId) {
      try {
        const { responseBody } = await registry.getTwin(deviceId);
        return asObject((responseBody as unknown as JsonObject).tags);
      } catch (err) {
        if (hubStatus(err) === 404) return undefined;
        throw wrap(`read the twin of ${deviceId}`, err);
      }
    },
    async patchDeviceTags(deviceId, patch) {
      try {
        await registry.updateTwin(deviceId, { tags: patch }, "*");
      } catch (err) {
        throw wrap(`tag device ${deviceId}`, err);
      }
    },
    async getModuleTwin(deviceId, moduleId) {
      try {
        const { responseBody } = await registry.getModuleTwin(deviceId, moduleId);
        return twinView(plain(responseBody));
      } catch (err) {
        if (hubStatus(err) === 404) return undefined;
        throw wrap(`read the module twin ${deviceId}/${moduleId}`, err);
      }
    },
    async patchModuleDesired(deviceId, moduleId, patch) {
      try {
        const { responseBody } = await registry.updateModuleTwin(
          deviceId,
          moduleId,
          { properties: { desired: patch } },
          "*",
        );
        return twinView(plain(responseBody)).desiredVersion;
      } catch (err) {
        throw wrap(`write the module twin ${deviceId}/${moduleId}`, err);
      }
    },
    async queryModuleTwins(moduleId) {
      const safe = moduleId.replaceAll("'", "''");
      const rows = await queryAll(
        `SELECT * FROM devices.modules WHERE moduleId = '${safe}'`,
        "query module twins",
      );
      return rows.map((row) => twinView(plain(row)));
    },
    async queryFleetDevices() {
      const rows = await queryAll(
        `SELECT * FROM devices WHERE ${FLEET_TARGET_CONDITION}`,
        "query fleet devices",
      );
      return rows.map((row) => {
        const o = asObject(row);
        const tag = readFleetTag(o.tags);
        return {
          deviceId: String(o.deviceId ?? ""),
          ...(tag.siteId !== undefined ? { siteId: tag.siteId } : {}),
        };
      });
    },
    async baseDeploymentFleetSize() {
      let configurations: unknown;
      try {
        configurations = (await registry.getConfigurations()).responseBody;
      } catch (err) {
        throw wrap("read the deployments", err);
      }
      const base = (Array.isArray(configurations) ? configurations : [])
        .map(asObject)
        .filter((c) => typeof c.id === "string" && c.id.startsWith(BASE_DEPLOYMENT_PREFIX))
        .sort((a, b) => String(b.createdTimeUtc ?? "").localeCompare(String(a.createdTimeUtc ?? "")))[0];
      if (!base) return undefined;
      return { id: String(base.id), fleetSize: deploymentFleetSize(base.content) ?? null };
    },
  };
  return hub;

  /** Every row of a query, page by page. */
  async function queryAll(sql: string, what: string): Promise<unknown[]> {
    const query = registry.createQuery(sql, queryPageSize);
    const out: unknown[] = [];
    try {
      do {
        // The promise form of next() without an argument sends no continuation token and
        // re-reads page one forever; pass the token the previous page left.
        const { result } = query.continuationToken
          ? await query.next(query.continuationToken)
          : await query.next();
        out.push(...(result as unknown[]));
      } while (query.hasMoreResults);
    } catch (err) {
      throw wrap(what, err);
    }
    return out;
  }
}
