/** Checks and reads the rollout's operations share: ids and names, a site's stored spec, device ownership. */
import { RelayFleetError } from "../../../../lib/errors.ts";
import { type SiteRow, siteIdSchema } from "../../../../lib/ledger/index.ts";
import { MappingNameSchema } from "../../../../lib/twin/index.ts";
import type { RolloutDeps } from "./context.ts";
import { siteNotFound, ValidationError } from "./errors.ts";
import { devicesOfRow } from "./offboard.ts";
import { type SiteSpec, siteSpecSchema } from "./schemas.ts";

export function checkSiteId(siteId: string): void {
  const parsed = siteIdSchema.safeParse(siteId);
  if (parsed.success) return;
  const reason = parsed.error.issues[0]?.message ?? "not a site id";
  throw new ValidationError(`site id "${siteId.slice(0, 80)}"`, [{ path: "siteId", message: reason }]);
}

export function checkMappingName(name: string): void {
  const parsed = MappingNameSchema.safeParse(name);
  if (parsed.success) return;
  const reason = parsed.error.issues[0]?.message ?? "not a mapping name";
  throw new ValidationError(`mapping name "${name.slice(0, 80)}"`, [{ path: "name", message: reason }]);
}

export async function storedSpec(
  deps: RolloutDeps,
  siteId: string,
): Promise<{ row: SiteRow; spec: SiteSpec }> {
  checkSiteId(siteId);
  const row = await deps.ledger.getSite(siteId);
  if (!row) throw siteNotFound(siteId);
  const parsed = siteSpecSchema.safeParse(JSON.parse(row.spec ?? "null"));
  if (!parsed.success) {
    throw new RelayFleetError(
      "RF_ERR_ROLLOUT_BAD_SPEC",
      `Site ${siteId}'s stored spec is unreadable; re-create the site.`,
    );
  }
  return { row, spec: parsed.data };
}

/** The parsed spec of a site row; undefined when it is unreadable. */
export function storedSpecOf(row: SiteRow): SiteSpec | undefined {
  try {
    const parsed = siteSpecSchema.safeParse(JSON.parse(row.spec ?? "null"));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** The same site: same profile and mappings, and every wanted device already one of its devices. */
export function sameSite(stored: SiteSpec, wanted: SiteSpec): boolean {
  return (
    stored.profile === wanted.profile &&
    JSON.stringify(stored.mappings) === JSON.stringify(wanted.mappings) &&
    wanted.deviceIds.every((d) => stored.deviceIds.includes(d))
  );
}

/**
 * Refuses devices that belong to another site: a point read of each device's claim in the ledger,
 * confirmed against the claiming site's own row (a claim its site no longer lists refuses
 * nothing), so the reads do not grow with the number of sites. A ledger from before claims has
 * every site's devices claimed once first.
 */
export async function checkDevicesFree(
  deps: RolloutDeps,
  siteId: string,
  deviceIds: readonly string[],
): Promise<void> {
  await ensureDeviceClaims(deps);
  for (const deviceId of deviceIds) {
    const claimant = await deps.ledger.getDeviceClaim(deviceId);
    if (claimant === undefined || claimant === siteId) continue;
    const row = await deps.ledger.getSite(claimant);
    if (row && devicesOfRow(row).includes(deviceId)) {
      throw new RelayFleetError(
        "RF_ERR_ROLLOUT_DEVICE_IN_OTHER_SITE",
        `Device ${deviceId} belongs to site ${row.siteId}; remove it there first (relay-fleet devices remove ${row.siteId} ${deviceId}). Nothing was changed.`,
      );
    }
  }
}

/** Claims every site's devices, once per ledger (its sites predate claims); afterwards one point read. */
async function ensureDeviceClaims(deps: RolloutDeps): Promise<void> {
  if (await deps.ledger.deviceClaimsComplete()) return;
  for (const row of await deps.ledger.listSites())
    await deps.ledger.claimDevices(row.siteId, devicesOfRow(row));
  await deps.ledger.markDeviceClaimsComplete();
}

/** The next `<site>.<n>` (n ≥ 2) that is none of the site's devices, for a device added without a name. */
export function nextDeviceId(siteId: string, current: readonly string[]): string {
  for (let n = 2; ; n++) if (!current.includes(`${siteId}.${n}`)) return `${siteId}.${n}`;
}

export const deviceNotInSite = (siteId: string, deviceId: string) =>
  new RelayFleetError("RF_ERR_ROLLOUT_DEVICE_NOT_FOUND", `Site ${siteId} has no device "${deviceId}".`);
