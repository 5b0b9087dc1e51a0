/**
 * Takes a site out of the fleet: ports released, every device's module twin cleaned (the module
 * drains and stops listening), tags removed, hybrid connection and its rules deleted, optionally
 * the devices deleted, and the ledger row last, so a crash part-way can simply be retried.
 * `detachDevice` is the per-device part, also used when one device leaves a site that stays.
 */
import { FLEET_TAG, RETIRED_TAG } from "../../../../lib/fleet-deployment.ts";
import { hybridConnectionOf, type RolloutDeps } from "./context.ts";
import { MODULE_ID } from "./desired-twin.ts";
import { forgetSite, relayFor } from "./namespaces.ts";
import { siteSpecSchema } from "./schemas.ts";

export interface OffboardResult {
  siteId: string;
  releasedPorts: number[];
  hybridConnectionDeleted: boolean;
  /** True when every device of the site was deleted. */
  deviceDeleted: boolean;
  /** The site's devices, each detached (and deleted with `deleteDevice`). */
  devices: string[];
}

/**
 * Detaches one device from its site: its module twin's desired properties are removed (the
 * module drains and stops listening) and the fleet tag gives way to the retired tag, which moves
 * the device from the base deployment to the retired one, so the module is removed
 * (lib/fleet-deployment.ts: IoT Hub would otherwise leave it running). A device that is gone is
 * fine; with `deleteDevice` its identity is deleted as well.
 */
export async function detachDevice(
  deps: RolloutDeps,
  deviceId: string,
  options: { deleteDevice?: boolean } = {},
): Promise<void> {
  const twin = await deps.hub.getModuleTwin(deviceId, MODULE_ID);
  if (twin) {
    const patch: Record<string, null> = {};
    for (const key of Object.keys(twin.desired)) if (!key.startsWith("$")) patch[key] = null;
    if (Object.keys(patch).length > 0) await deps.hub.patchModuleDesired(deviceId, MODULE_ID, patch);
  }
  const tags = await deps.hub.getDeviceTags(deviceId);
  if (tags && FLEET_TAG in tags)
    await deps.hub.patchDeviceTags(deviceId, { [FLEET_TAG]: null, [RETIRED_TAG]: true });
  if (options.deleteDevice) await deps.hub.deleteDevice(deviceId);
}

/** The devices of a site as its ledger row lists them (the spec's list, else the row's one device). */
export function devicesOfRow(row: { deviceId: string; spec?: string | undefined } | undefined): string[] {
  if (!row) return [];
  try {
    const parsed = siteSpecSchema.safeParse(JSON.parse(row.spec ?? "null"));
    if (parsed.success) return parsed.data.deviceIds;
  } catch {
    // An unreadable spec still names its first device in the row.
  }
  return [row.deviceId];
}

/**
 * Offboards a site; `deviceId` is used when the ledger row is already gone, and `goneDevice` is
 * a device that no longer exists (a DeviceDeleted event), so nothing is written to it.
 */
export async function offboardSite(
  deps: RolloutDeps,
  siteId: string,
  options: { deleteDevice?: boolean; deviceId?: string; goneDevice?: string } = {},
): Promise<OffboardResult> {
  const row = await deps.ledger.getSite(siteId);
  const devices = [...new Set([...devicesOfRow(row), ...(row ? [] : [options.deviceId ?? siteId])])];

  const routes = await deps.ledger.listRoutes({ siteId });
  for (const r of routes) await deps.ledger.release(r.rowKey);

  for (const deviceId of devices) {
    if (deviceId === options.goneDevice) continue;
    await detachDevice(deps, deviceId, { deleteDevice: options.deleteDevice === true });
  }

  // Deleting the hybrid connection deletes its rules and closes its listeners.
  // The row names the current key generation's hybrid connection (rotation moves it).
  const hcs = new Set([row?.hybridConnection ?? hybridConnectionOf(siteId), hybridConnectionOf(siteId)]);
  let hybridConnectionDeleted = false;
  const relay = row ? relayFor(deps, row.relayEndpoint) : deps.relay;
  for (const hc of hcs) if (await relay.deleteHybridConnection(hc)) hybridConnectionDeleted = true;

  await deps.ledger.deleteSite(siteId);
  await deps.ledger.releaseDeviceClaims(siteId, devices);
  forgetSite(deps, siteId);
  deps.logger?.info({ siteId, devices, ports: routes.map((r) => r.port) }, "site offboarded");
  return {
    siteId,
    releasedPorts: routes.filter((r) => r.kind === "tcp").map((r) => r.port),
    hybridConnectionDeleted,
    deviceDeleted: options.deleteDevice === true && options.goneDevice === undefined,
    devices,
  };
}
