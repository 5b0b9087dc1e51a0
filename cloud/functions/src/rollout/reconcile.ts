/**
 * Reconcile: compares every site's desired state (ledger spec) with IoT Hub (one module-twin
 * query, never a poll) and the ledger's routes, reports drift, and re-applies what rollout owns
 * and can safely rewrite (missing twin, edited desired mappings, missing or extra routes).
 * Module-side drift (not applied, errors, offline, old key) is reported only.
 */
import { errorMessage } from "../../../../lib/errors.ts";
import { TOMBSTONE_RETENTION_MS } from "../../../../lib/ledger/schema.ts";
import { applySite } from "./apply.ts";
import type { RolloutDeps } from "./context.ts";
import { parseHybridConnection } from "./context.ts";
import { buildDesired, MODULE_ID, withoutMeta } from "./desired-twin.ts";
import type { JsonObject } from "./hub.ts";
import { namespacesOf } from "./namespaces.ts";
import { devicesOfRow } from "./offboard.ts";
import { type SiteSpec, siteSpecSchema } from "./schemas.ts";
import { siteStatusFromTwin } from "./status.ts";

export interface DriftItem {
  siteId: string;
  /** The device of the site the item is about (twin and module drift). */
  deviceId?: string;
  kind:
    | "twin-missing"
    | "desired-mismatch"
    | "routes-mismatch"
    | "module"
    | "orphan-route"
    | "orphan-hybrid-connection"
    | "device-not-in-site"
    | "device-in-two-sites"
    | "bad-spec";
  detail: string;
  /** Whether reconcile re-applied the site for it (and whether that worked). */
  repaired?: boolean;
  repairError?: string;
}

export interface DriftReport {
  at: string;
  sites: number;
  items: DriftItem[];
}

/** Runs one reconcile pass. `repair: false` only reports. */
export async function reconcileFleet(
  deps: RolloutDeps,
  options: { repair?: boolean } = {},
): Promise<DriftReport> {
  const repair = options.repair ?? true;
  const [sites, routes, twins, hcs, tagged] = await Promise.all([
    deps.ledger.listSites(),
    deps.ledger.listRoutes(),
    deps.hub.queryModuleTwins(MODULE_ID),
    // Every namespace's hybrid connections, each with the namespace it is in.
    Promise.all(
      namespacesOf(deps).map(async (n) =>
        (await n.admin.list()).map((hc) => ({ ...hc, endpoint: n.admin.endpoint })),
      ),
    ).then((lists) => lists.flat()),
    deps.hub.queryFleetDevices(),
  ]);
  const items: DriftItem[] = [];
  const siteIds = new Set(sites.map((s) => s.siteId));
  const twinByDevice = new Map(twins.map((t) => [t.deviceId, t]));

  for (const r of routes) {
    if (r.kind !== "shared" && !siteIds.has(r.siteId)) {
      items.push({ siteId: r.siteId, kind: "orphan-route", detail: `route ${r.rowKey} has no site row` });
    }
  }
  const rowOfSite = new Map(sites.map((s) => [s.siteId, s]));
  const several = namespacesOf(deps).length > 1;
  for (const hc of hcs) {
    const parsed = parseHybridConnection(hc.name);
    if (!parsed) continue;
    const row = rowOfSite.get(parsed.siteId);
    const current = row?.hybridConnection;
    // A site's previous key generation (a rotation that stopped before deleting it) is an orphan
    // too: its old keys would keep listeners registered; so is its hybrid connection in a
    // namespace it was moved out of.
    const elsewhere = row !== undefined && row.relayEndpoint !== hc.endpoint;
    if (current !== hc.name || elsewhere) {
      const where = several ? ` in ${hc.endpoint}` : "";
      items.push({
        siteId: parsed.siteId,
        kind: "orphan-hybrid-connection",
        detail: !current
          ? `${hc.name}${where} has no site row`
          : elsewhere
            ? `${hc.name}${where} is not in the site's namespace ${row.relayEndpoint}`
            : `${hc.name}${where} is not the site's hybrid connection ${current}`,
      });
    }
  }

  items.push(...deviceDrift(sites, tagged));

  for (const site of sites) {
    let spec: SiteSpec;
    try {
      spec = siteSpecSchema.parse(JSON.parse(site.spec ?? "null"));
    } catch (err) {
      items.push({
        siteId: site.siteId,
        kind: "bad-spec",
        detail: `stored spec unreadable: ${errorMessage(err)}`,
      });
      continue;
    }
    const found: DriftItem[] = [];
    // Every device of the site has its own module twin with the site's desired properties.
    const built = buildDesired(
      { endpoint: "", hybridConnection: "", sasKeyName: "", sasKey: "" },
      spec.mappings,
    );
    for (const deviceId of spec.deviceIds) {
      const twin = twinByDevice.get(deviceId);
      const desired = twin ? withoutMeta(twin.desired) : undefined;
      const on = spec.deviceIds.length > 1 ? ` on device ${deviceId}` : "";
      if (!twin || !desired?.relay) {
        found.push({
          siteId: site.siteId,
          deviceId,
          kind: "twin-missing",
          detail: `module twin or its relay settings missing${on}`,
        });
        continue;
      }
      const relay = desired.relay as JsonObject;
      if (
        JSON.stringify(desired.mappings ?? {}) !== JSON.stringify(built.mappings) ||
        relay.hybridConnection !== site.hybridConnection ||
        relay.endpoint !== site.relayEndpoint
      ) {
        found.push({
          siteId: site.siteId,
          deviceId,
          kind: "desired-mismatch",
          detail: `desired properties differ from the site spec${on}`,
        });
      }
    }
    const siteRoutes = routes.filter((r) => r.siteId === site.siteId);
    const names = Object.keys(spec.mappings).sort();
    const routed = [...new Set(siteRoutes.map((r) => r.portName))].sort();
    if (JSON.stringify(names) !== JSON.stringify(routed) || siteRoutes.length !== names.length) {
      found.push({
        siteId: site.siteId,
        kind: "routes-mismatch",
        detail: `mappings [${names.join(", ")}] vs routes [${siteRoutes.map((r) => `${r.portName}@${r.rowKey}`).join(", ")}]`,
      });
    }
    if (found.length > 0 && repair) {
      try {
        await applySite(deps, spec);
        for (const f of found) f.repaired = true;
      } catch (err) {
        for (const f of found) {
          f.repaired = false;
          f.repairError = errorMessage(err);
        }
      }
    }
    items.push(...found);
    for (const deviceId of spec.deviceIds) {
      const twin = twinByDevice.get(deviceId);
      if (!twin?.desired.relay) continue;
      const on = spec.deviceIds.length > 1 ? `${deviceId}: ` : "";
      for (const d of siteStatusFromTwin(twin).drift)
        items.push({ siteId: site.siteId, deviceId, kind: "module", detail: `${on}${d}` });
    }
  }
  if (repair) {
    // Tombstones only serve gateways following the ledger by its changes; a day covers any
    // gateway's full re-read period (follow-ledger.ts). A failure here is retried next pass.
    const olderThan = new Date(Date.now() - TOMBSTONE_RETENTION_MS);
    await deps.ledger.pruneTombstones(olderThan).then(
      (pruned) => pruned > 0 && deps.logger?.info({ pruned }, "ledger tombstones pruned"),
      (err: unknown) => deps.logger?.warn({ error: errorMessage(err) }, "ledger tombstone pruning failed"),
    );
  }
  const report = { at: new Date().toISOString(), sites: sites.length, items };
  deps.logger?.info({ sites: report.sites, drift: items.length, items }, "reconcile drift report");
  return report;
}

/**
 * Devices the sites and IoT Hub disagree about, reported only (which side is right is the
 * operator's call): a device carrying a site's tag that is none of the site's devices (its
 * DeviceCreated event was lost, or a removal stopped half way: the base deployment gives it the
 * module, with no settings), a tag naming no site, and a device two sites list.
 */
function deviceDrift(
  sites: ReadonlyArray<{ siteId: string; deviceId: string; spec?: string | undefined }>,
  tagged: ReadonlyArray<{ deviceId: string; siteId?: string }>,
): DriftItem[] {
  const items: DriftItem[] = [];
  const sitesOf = new Map<string, string[]>();
  const devicesOf = new Map<string, string[]>();
  for (const site of sites) {
    const devices = devicesOfRow(site);
    devicesOf.set(site.siteId, devices);
    for (const d of devices) sitesOf.set(d, [...(sitesOf.get(d) ?? []), site.siteId]);
  }
  for (const [deviceId, ids] of sitesOf) {
    if (ids.length < 2) continue;
    for (const siteId of ids)
      items.push({
        siteId,
        deviceId,
        kind: "device-in-two-sites",
        detail: `device ${deviceId} is listed by sites ${ids.join(" and ")}; remove it from all but one (relay-fleet devices remove)`,
      });
  }
  for (const { deviceId, siteId } of tagged) {
    if (siteId === undefined) continue;
    const devices = devicesOf.get(siteId);
    if (devices?.includes(deviceId)) continue;
    items.push({
      siteId,
      deviceId,
      kind: "device-not-in-site",
      detail: devices
        ? `device ${deviceId} is tagged for site ${siteId} but is none of its devices: add it (relay-fleet devices add ${siteId} ${deviceId}) or remove its tag`
        : `device ${deviceId} is tagged for site ${siteId}, which does not exist: create the site or remove the tag`,
    });
  }
  return items;
}
