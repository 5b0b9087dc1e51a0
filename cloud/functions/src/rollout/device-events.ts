/**
 * IoT Hub device lifecycle events (Event Grid): a device created with the relay tag
 * (`tags.relayFleet`) is onboarded with its profile and no human step; a deleted device's site
 * is offboarded. A malformed or untagged event is ignored with a reason, never thrown.
 */

import { errorMessage } from "../../../../lib/errors.ts";
import { FLEET_TAG } from "../../../../lib/fleet-deployment.ts";
import { SITE_ID_PATTERN } from "../../../../lib/ledger/schema.ts";
import type { Rollout } from "./service.ts";

export interface DeviceEventResult {
  action: "onboarded" | "offboarded" | "ignored" | "failed";
  siteId?: string;
  reason?: string;
}

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Obj) : {});

/** Handles one Event Grid event (Event Grid schema or CloudEvents: `eventType` or `type`). */
export async function handleDeviceEvent(rollout: Rollout, event: unknown): Promise<DeviceEventResult> {
  const e = obj(event);
  const type = String(e.eventType ?? e.type ?? "");
  const data = obj(e.data);
  const twin = obj(data.twin);
  const deviceId = String(data.deviceId ?? twin.deviceId ?? "");
  if (!deviceId) return { action: "ignored", reason: "event has no deviceId" };
  const tag = obj(obj(twin.tags)[FLEET_TAG]);
  const tagged = Object.keys(obj(twin.tags)).includes(FLEET_TAG);
  const siteId = typeof tag.siteId === "string" ? tag.siteId : deviceId;
  try {
    if (type === "Microsoft.Devices.DeviceCreated") {
      if (!tagged) return { action: "ignored", reason: "device has no relayFleet tag" };
      if (!SITE_ID_PATTERN.test(siteId))
        return { action: "ignored", reason: `"${siteId}" is not a valid site id` };
      const profile = typeof tag.profile === "string" ? tag.profile : undefined;
      await rollout.createSite({ siteId, deviceId, ...(profile ? { profile } : {}) });
      return { action: "onboarded", siteId };
    }
    if (type === "Microsoft.Devices.DeviceDeleted") {
      // Through the site's lock, like every other writer: never interleaved with a mapping change.
      const result = SITE_ID_PATTERN.test(siteId)
        ? await rollout.offboardDeletedDevice(siteId, deviceId)
        : undefined;
      if (!result) return { action: "ignored", reason: "no site uses this device" };
      return { action: "offboarded", siteId };
    }
    return { action: "ignored", reason: `event type ${type || "(none)"} is not handled` };
  } catch (err) {
    rollout.deps.logger?.error({ siteId, deviceId, err: errorMessage(err) }, "device event failed");
    return { action: "failed", siteId, reason: errorMessage(err) };
  }
}
