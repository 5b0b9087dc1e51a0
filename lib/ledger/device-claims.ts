/**
 * Device claims: which site each device belongs to, one row per device in the ledger's `device`
 * partition, so "is this device another site's?" is a point read rather than a read of every site
 * row (onboarding N sites would otherwise read O(N²) rows). A claim is a hint the caller confirms
 * against the named site's own row: the site row stays the truth, so a claim left behind by a
 * device that has since left its site, or by a write that stopped half way, refuses nothing.
 */
import type { TableClient } from "@azure/data-tables";
import { DEVICE_CLAIMS_COMPLETE_KEY, DEVICE_PARTITION, deviceClaimKey } from "./schema.ts";
import { statusOf } from "./table.ts";

export interface DeviceClaims {
  /** The site that claims the device; undefined when none does. */
  getDeviceClaim(deviceId: string): Promise<string | undefined>;
  /** Claims the devices for the site (replacing any other claim on them). */
  claimDevices(siteId: string, deviceIds: readonly string[]): Promise<void>;
  /** Deletes the devices' claims that name the site; claims of another site stay. */
  releaseDeviceClaims(siteId: string, deviceIds: readonly string[]): Promise<void>;
  /** True once every site's devices have been claimed (`markDeviceClaimsComplete`). */
  deviceClaimsComplete(): Promise<boolean>;
  markDeviceClaimsComplete(): Promise<void>;
}

export function createDeviceClaims(client: TableClient): DeviceClaims {
  async function read(rowKey: string): Promise<Record<string, unknown> | undefined> {
    try {
      return (await client.getEntity(DEVICE_PARTITION, rowKey)) as Record<string, unknown>;
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw err;
    }
  }
  // Once seen complete, always complete: the marker is never deleted.
  let complete = false;
  return {
    async getDeviceClaim(deviceId) {
      const e = await read(deviceClaimKey(deviceId));
      return typeof e?.siteId === "string" && e.siteId !== "" ? e.siteId : undefined;
    },
    async claimDevices(siteId, deviceIds) {
      for (const deviceId of deviceIds)
        await client.upsertEntity(
          { partitionKey: DEVICE_PARTITION, rowKey: deviceClaimKey(deviceId), deviceId, siteId },
          "Replace",
        );
    },
    async releaseDeviceClaims(siteId, deviceIds) {
      for (const deviceId of deviceIds) {
        const rowKey = deviceClaimKey(deviceId);
        const e = await read(rowKey);
        if (e?.siteId !== siteId) continue;
        try {
          // Only the claim as read: one another site took meanwhile (a new ETag) stays.
          await client.deleteEntity(DEVICE_PARTITION, rowKey, { etag: String(e.etag) });
        } catch (err) {
          if (statusOf(err) !== 404 && statusOf(err) !== 412) throw err;
        }
      }
    },
    async deviceClaimsComplete() {
      complete ||= (await read(DEVICE_CLAIMS_COMPLETE_KEY)) !== undefined;
      return complete;
    },
    async markDeviceClaimsComplete() {
      await client.upsertEntity(
        { partitionKey: DEVICE_PARTITION, rowKey: DEVICE_CLAIMS_COMPLETE_KEY, at: new Date().toISOString() },
        "Replace",
      );
      complete = true;
    },
  };
}
