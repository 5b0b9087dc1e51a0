/**
 * Takes a site out of the fleet: ports released, module twin cleaned (the module drains and
 * stops listening), tags removed, hybrid connection and its rules deleted, optionally the device
 * deleted, and the ledger row last, so a crash part-way can simply be retried.
 */
import { FLEET_TAG, RETIRED_TAG } from "../../../../lib/fleet-deployment.ts";
import { hybridConnectionOf, type RolloutDeps } from "./context.ts";
import { MODULE_ID } from "./desired-twin.ts";

export interface OffboardResult {
  siteId: string;
  releasedPorts: number[];
  hybridConnectionDeleted: boolean;
  deviceDeleted: boolean;
}

/** Offboards a site; `deviceId` is used when the ledger row is already gone. */
export async function offboardSite(
  deps: RolloutDeps,
  siteId: string,
  options: { deleteDevice?: boolean; deviceId?: string; deviceGone?: boolean } = {},
): Promise<OffboardResult> {
  const row = await deps.ledger.getSite(siteId);
  const deviceId = row?.deviceId ?? options.deviceId ?? siteId;

  const routes = await deps.ledger.listRoutes({ siteId });
  for (const r of routes) await deps.ledger.release(r.rowKey);

  if (!options.deviceGone) {
    const twin = await deps.hub.getModuleTwin(deviceId, MODULE_ID);
    if (twin) {
      const patch: Record<string, null> = {};
      for (const key of Object.keys(twin.desired)) if (!key.startsWith("$")) patch[key] = null;
      if (Object.keys(patch).length > 0) await deps.hub.patchModuleDesired(deviceId, MODULE_ID, patch);
    }
    // The retired tag moves the device from the base deployment to the retired one, which
    // removes the module (lib/fleet-deployment.ts: IoT Hub would otherwise leave it running).
    const tags = await deps.hub.getDeviceTags(deviceId);
    if (tags && FLEET_TAG in tags)
      await deps.hub.patchDeviceTags(deviceId, { [FLEET_TAG]: null, [RETIRED_TAG]: true });
  }

  // Deleting the hybrid connection deletes its rules and closes its listeners.
  // The row names the current key generation's hybrid connection (rotation moves it).
  const hcs = new Set([row?.hybridConnection ?? hybridConnectionOf(siteId), hybridConnectionOf(siteId)]);
  let hybridConnectionDeleted = false;
  for (const hc of hcs) if (await deps.relay.deleteHybridConnection(hc)) hybridConnectionDeleted = true;

  let deviceDeleted = false;
  if (options.deleteDevice && !options.deviceGone) {
    await deps.hub.deleteDevice(deviceId);
    deviceDeleted = true;
  }
  await deps.ledger.deleteSite(siteId);
  deps.logger?.info({ siteId, ports: routes.map((r) => r.port) }, "site offboarded");
  return {
    siteId,
    releasedPorts: routes.filter((r) => r.kind === "tcp").map((r) => r.port),
    hybridConnectionDeleted,
    deviceDeleted,
  };
}
