/** Checks and reads the rollout's operations share: ids and names, a site's stored spec, device ownership. */
import { RelayFleetError } from "../../../../lib/errors.ts";
import { type SiteRow, siteIdSchema } from "../../../../lib/ledger/index.ts";
import { MappingNameSchema } from "../../../../lib/twin/index.ts";
import type { RolloutDeps } from "./context.ts";
import { siteNotFound, ValidationError } from "./errors.ts";
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

/** Refuses devices that belong to another site (one ledger read: every site's spec). */
export async function checkDevicesFree(
  deps: RolloutDeps,
  siteId: string,
  deviceIds: readonly string[],
): Promise<void> {
  for (const row of await deps.ledger.listSites()) {
    if (row.siteId === siteId) continue;
    const theirs = storedSpecOf(row)?.deviceIds ?? [row.deviceId];
    const taken = deviceIds.find((d) => theirs.includes(d));
    if (taken !== undefined) {
      throw new RelayFleetError(
        "RF_ERR_ROLLOUT_DEVICE_IN_OTHER_SITE",
        `Device ${taken} belongs to site ${row.siteId}; remove it there first (relay-fleet devices remove ${row.siteId} ${taken}). Nothing was changed.`,
      );
    }
  }
}

/** The next `<site>.<n>` (n ≥ 2) that is none of the site's devices, for a device added without a name. */
export function nextDeviceId(siteId: string, current: readonly string[]): string {
  for (let n = 2; ; n++) if (!current.includes(`${siteId}.${n}`)) return `${siteId}.${n}`;
}

export const deviceNotInSite = (siteId: string, deviceId: string) =>
  new RelayFleetError("RF_ERR_ROLLOUT_DEVICE_NOT_FOUND", `Site ${siteId} has no device "${deviceId}".`);
