/**
 * IoT Hub device lifecycle events (Event Grid): a device created with the relay tag
 * (`tags.relayFleet`) is onboarded with its profile and no human step, or, when the site its tag
 * names exists, joins that site as one more device (a redundant site, ADR 0014); a deleted
 * device leaves its site, and a site whose last device is deleted is offboarded. A malformed or
 * untagged event is ignored with a reason, never thrown.
 */

import { errorMessage } from "../../../../lib/errors.ts";
import { readFleetTag } from "../../../../lib/fleet-deployment.ts";
import { SITE_ID_PATTERN } from "../../../../lib/ledger/schema.ts";
import type { RolloutDeps } from "./context.ts";

/**
 * What a device event needs of the rollout service. The service (service.ts) has this shape and
 * hands itself in; named here so that this file imports nothing of service.ts, which imports it.
 */
export interface DeviceEventRollout {
  readonly deps: Pick<RolloutDeps, "logger">;
  createSite(body: unknown): Promise<{ created: boolean }>;
  addDevice(siteId: string, body: unknown): Promise<unknown>;
  offboardDeletedDevice(
    siteId: string,
    deviceId: string,
  ): Promise<{ action: "device-removed" | "offboarded"; siteId: string } | undefined>;
}

export interface DeviceEventResult {
  action: "onboarded" | "joined" | "offboarded" | "device-removed" | "ignored" | "failed";
  siteId?: string;
  reason?: string;
}

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Obj) : {});

/** Handles one Event Grid event (Event Grid schema or CloudEvents: `eventType` or `type`). */
export async function handleDeviceEvent(
  rollout: DeviceEventRollout,
  event: unknown,
): Promise<DeviceEventResult> {
  const e = obj(event);
  const type = String(e.eventType ?? e.type ?? "");
  const data = obj(e.data);
  const twin = obj(data.twin);
  const deviceId = String(data.deviceId ?? twin.deviceId ?? "");
  if (!deviceId) return { action: "ignored", reason: "event has no deviceId" };
  const tag = readFleetTag(twin.tags);
  const siteId = tag.siteId ?? deviceId;
  try {
    if (type === "Microsoft.Devices.DeviceCreated") {
      if (!tag.tagged) return { action: "ignored", reason: "device has no relayFleet tag" };
      if (!SITE_ID_PATTERN.test(siteId))
        return { action: "ignored", reason: `"${siteId}" is not a valid site id` };
      return await onboardOrJoin(rollout, siteId, deviceId, tag.profile);
    }
    if (type === "Microsoft.Devices.DeviceDeleted") {
      // Through the site's lock, like every other writer: never interleaved with a mapping change.
      const result = SITE_ID_PATTERN.test(siteId)
        ? await rollout.offboardDeletedDevice(siteId, deviceId)
        : undefined;
      if (!result) return { action: "ignored", reason: "no site uses this device" };
      return { action: result.action, siteId };
    }
    return { action: "ignored", reason: `event type ${type || "(none)"} is not handled` };
  } catch (err) {
    rollout.deps.logger?.error({ siteId, deviceId, err: errorMessage(err) }, "device event failed");
    return { action: "failed", siteId, reason: errorMessage(err) };
  }
}

/**
 * A new site from the device's profile, or, when the site exists (its other device came first,
 * or two devices of a new site race and the other won), the device joins it. The existing
 * site's mappings stay: a joining device gets what its site's other devices have.
 */
async function onboardOrJoin(
  rollout: DeviceEventRollout,
  siteId: string,
  deviceId: string,
  profile: string | undefined,
): Promise<DeviceEventResult> {
  try {
    const { created } = await rollout.createSite({ siteId, deviceId, ...(profile ? { profile } : {}) });
    return { action: created ? "onboarded" : "joined", siteId };
  } catch (err) {
    if ((err as { code?: unknown }).code !== "RF_ERR_ROLLOUT_SITE_EXISTS") throw err;
  }
  await rollout.addDevice(siteId, { deviceId });
  return { action: "joined", siteId };
}
