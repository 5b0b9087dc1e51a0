/**
 * The rollout facade the Functions handlers, the CLI and the simulation call: validates input
 * with the one schema, serializes work per site inside an instance (across instances the ledger's
 * insert-if-absent and idempotent steps keep things consistent), and shapes readable answers.
 */
import { RelayFleetError } from "../../../../lib/errors.ts";
import type { ApplyHints, ApplyProgress } from "./apply.ts";
import { applyAndView, commitChange } from "./change-commit.ts";
import type { RolloutDeps } from "./context.ts";
import { MODULE_ID } from "./desired-twin.ts";
import { type DeviceEventResult, handleDeviceEvent } from "./device-events.ts";
import { siteNotFound, ValidationError } from "./errors.ts";
import { type FleetStatusView, fleetStatusView } from "./fleet-status.ts";
import { findNamespace, type MoveResult, moveSite } from "./move.ts";
import { type NamespaceLoad, namespaceLoads } from "./namespaces.ts";
import { detachDevice, type OffboardResult, offboardSite } from "./offboard.ts";
import { createOnboardingQueue, type OnboardingQueue } from "./onboarding-queue.ts";
import { type DriftReport, reconcileFleet } from "./reconcile.ts";
import { type RotateResult, rotateSiteKeys } from "./rotate.ts";
import {
  addDeviceBodySchema,
  createSiteBodySchema,
  deviceIdSchema,
  MAX_DEVICES_PER_SITE,
  type MappingSpec,
  mappingSpecSchema,
  moveSiteBodySchema,
  putMappingBodySchema,
  type SiteSpec,
  siteSpecSchema,
  updateMappingBodySchema,
} from "./schemas.ts";
import {
  checkDevicesFree as checkDevicesFreeFor,
  checkMappingName,
  checkSiteId,
  deviceNotInSite,
  nextDeviceId,
  sameSite,
  storedSpec as storedSpecFor,
  storedSpecOf,
} from "./site-checks.ts";
import { createSiteLock } from "./site-lock.ts";
import { bySiteId, type SiteView, siteView } from "./site-view.ts";
import { type SiteStatus, siteStatusFromTwin } from "./status.ts";

export type { DeviceView, MappingView, SiteView } from "./site-view.ts";

export interface Rollout {
  readonly deps: RolloutDeps;
  /** Onboarding many sites as a throttle-aware queue with progress (onboarding-queue.ts). */
  readonly onboarding: OnboardingQueue;
  /**
   * Creates (201) or re-applies an identical existing site (200); 409 when it exists with another
   * spec. `hints`: what the caller knows of its devices (the onboarding queue's bulk create).
   */
  createSite(body: unknown, hints?: ApplyHints): Promise<{ created: boolean; site: SiteView }>;
  /** Converges a site to its stored spec (retry after a crash). */
  reapplySite(siteId: string): Promise<SiteView>;
  getSite(siteId: string, options?: { withModule?: boolean }): Promise<SiteView>;
  listSites(): Promise<SiteView[]>;
  removeSite(siteId: string, options?: { deleteDevice?: boolean }): Promise<OffboardResult>;
  /** Adds a mapping; 409 (`RF_ERR_ROLLOUT_MAPPING_EXISTS`) when the name is taken. */
  addMapping(siteId: string, name: string, body: unknown): Promise<SiteView>;
  /** Changes only the fields given in `body`; 404 when the mapping does not exist. */
  updateMapping(siteId: string, name: string, body: unknown): Promise<SiteView>;
  /** Replaces a mapping whole (fields left out take their defaults); creates it when absent. */
  putMapping(siteId: string, name: string, body: unknown): Promise<SiteView>;
  deleteMapping(siteId: string, name: string): Promise<SiteView>;
  rotateKeys(siteId: string): Promise<RotateResult>;
  /**
   * Moves a site to another configured relay namespace (`{ namespace }`: its endpoint or name),
   * keeping its public ports (move.ts); 409 `RF_ERR_ROLLOUT_RELAY_FULL` when it has no room.
   */
  moveSite(siteId: string, body: unknown): Promise<MoveResult>;
  /** Each relay namespace's sites and connections against its quota and fill limit. */
  relayNamespaces(): Promise<NamespaceLoad[]>;
  reconcile(options?: { repair?: boolean }): Promise<DriftReport>;
  /** One twin query: status of every site's module (with what the gateways report as drift). */
  fleetStatus(): Promise<SiteStatus[]>;
  /** `fleetStatus` and the gateways' own reports (their status table). */
  fleetView(): Promise<FleetStatusView>;
  handleDeviceEvent(event: unknown): Promise<DeviceEventResult>;
  /**
   * A device was deleted, under the site's lock like every other writer: it leaves its site
   * (`device-removed`), or, when it was the site's last device, the site is offboarded;
   * undefined when no site uses that device.
   */
  offboardDeletedDevice(
    siteId: string,
    deviceId: string,
  ): Promise<{ action: "device-removed" | "offboarded"; siteId: string } | undefined>;
  /** Site spec from a profile (device events, CLI). */
  specFromProfile(siteId: string, deviceIds: string[], profile?: string): SiteSpec;
  /**
   * Joins a device to a site (`{ deviceId? }`; absent: the next free `<site>.<n>`): the device
   * and its module identity are created if missing, its module twin and tags written like the
   * site's other devices'. `created: false` when it already belongs to the site. Refused (and
   * nothing written) when it belongs to another site or the site is full.
   */
  addDevice(siteId: string, body: unknown): Promise<{ created: boolean; site: SiteView }>;
  /**
   * Takes a device out of a site that keeps its others: its module twin is cleaned and its tag
   * retired (the module is removed), optionally its identity deleted. A site's last device is
   * not removed this way: remove the site.
   */
  removeDevice(siteId: string, deviceId: string, options?: { deleteDevice?: boolean }): Promise<SiteView>;
}

/** Creates the rollout service over its dependencies. */
export function createRollout(deps: RolloutDeps): Rollout {
  const withSiteLock = createSiteLock();
  const defaultProfile = deps.defaultProfile ?? "default";

  const storedSpec = (siteId: string) => storedSpecFor(deps, siteId);
  const checkDevicesFree = (siteId: string, deviceIds: readonly string[]) =>
    checkDevicesFreeFor(deps, siteId, deviceIds);

  /** A site with each device's module state from its own twin (`withModule: false`: without). */
  async function getSiteView(siteId: string, options: { withModule?: boolean } = {}): Promise<SiteView> {
    const { row, spec } = await storedSpec(siteId);
    const site = siteView(spec, row, await deps.ledger.listRoutes({ siteId }));
    if (options.withModule !== false) {
      for (const device of site.devices) {
        const twin = await deps.hub.getModuleTwin(device.deviceId, MODULE_ID);
        if (twin) device.module = siteStatusFromTwin(twin);
      }
    }
    return site;
  }

  function specFromProfile(siteId: string, deviceIds: string[], profile?: string): SiteSpec {
    const name = profile ?? defaultProfile;
    const p = deps.profiles[name];
    if (!p) {
      throw new RelayFleetError(
        "RF_ERR_ROLLOUT_UNKNOWN_PROFILE",
        `Site profile "${name}" is not configured.`,
      );
    }
    return { siteId, deviceIds, profile: name, mappings: structuredClone(p.mappings) };
  }

  const apply = (spec: SiteSpec, progress?: ApplyProgress, hints?: ApplyHints) =>
    applyAndView(deps, spec, progress, hints);
  const commit = (
    spec: SiteSpec,
    previous: { spec: SiteSpec } | undefined,
    createdDevices: ReadonlySet<string> = new Set(),
    hints?: ApplyHints,
  ) => commitChange(deps, spec, previous, createdDevices, hints);

  async function changeMappings(
    siteId: string,
    change: (m: SiteSpec["mappings"]) => void,
  ): Promise<SiteView> {
    checkSiteId(siteId);
    return withSiteLock(siteId, async () => {
      const previous = await storedSpec(siteId);
      const next = structuredClone(previous.spec);
      change(next.mappings);
      return commit(next, previous);
    });
  }

  const mappingExists = (m: SiteSpec["mappings"], name: string) => Object.hasOwn(m, name);

  const mappingNotFound = (siteId: string, name: string) =>
    new RelayFleetError("RF_ERR_ROLLOUT_MAPPING_NOT_FOUND", `Site ${siteId} has no mapping "${name}".`);

  let onboarding: OnboardingQueue | undefined;
  const rollout: Rollout = {
    deps,
    get onboarding() {
      onboarding ??= createOnboardingQueue(rollout, deps.onboarding);
      return onboarding;
    },
    specFromProfile,
    async createSite(body, hints) {
      const parsed = createSiteBodySchema.safeParse(body);
      if (!parsed.success) throw new ValidationError("site", parsed.error);
      const b = parsed.data;
      const deviceIds = b.deviceIds ?? [b.deviceId ?? b.siteId];
      const spec: SiteSpec = b.mappings
        ? { siteId: b.siteId, deviceIds, profile: b.profile ?? defaultProfile, mappings: b.mappings }
        : specFromProfile(b.siteId, deviceIds, b.profile);
      return withSiteLock(b.siteId, async () => {
        const row = await deps.ledger.getSite(b.siteId);
        // A row without a spec (an onboarding that predates specs) is completed like a new site.
        if (row?.spec !== undefined) {
          const stored = storedSpecOf(row);
          // The same site again (its devices among the site's: more may have joined since) is
          // re-applied as it is stored; anything else is another site under the same id.
          if (!stored || !sameSite(stored, spec)) {
            throw new RelayFleetError(
              "RF_ERR_ROLLOUT_SITE_EXISTS",
              `Site ${b.siteId} already exists with other settings; change its mappings with PATCH /api/sites/${b.siteId}/mappings/{name}, its devices with POST /api/sites/${b.siteId}/devices.`,
            );
          }
          // Re-applying an existing identical site rolls back to that same spec if refused.
          return { created: false, site: await commit(stored, { spec: stored }) };
        }
        await checkDevicesFree(b.siteId, spec.deviceIds);
        return {
          created: row === undefined,
          // The row read above, under the lock: the change need not read it again.
          site: await commit(spec, row ? { spec } : undefined, new Set(), { ...hints, row: row ?? null }),
        };
      });
    },
    async addDevice(siteId, body) {
      checkSiteId(siteId);
      const parsed = addDeviceBodySchema.safeParse(body ?? {});
      if (!parsed.success) throw new ValidationError("device", parsed.error);
      return withSiteLock(siteId, async () => {
        const previous = await storedSpec(siteId);
        const current = previous.spec.deviceIds;
        const deviceId = parsed.data.deviceId ?? nextDeviceId(siteId, current);
        if (current.includes(deviceId)) return { created: false, site: await getSiteView(siteId) };
        if (current.length >= MAX_DEVICES_PER_SITE) {
          throw new RelayFleetError(
            "RF_ERR_ROLLOUT_SITE_FULL",
            `Site ${siteId} has ${current.length} devices, the most a site may have (${MAX_DEVICES_PER_SITE}: all of them listen on the site's one hybrid connection, and Azure Relay allows 25 listeners on one); nothing was changed.`,
          );
        }
        await checkDevicesFree(siteId, [deviceId]);
        const existed = (await deps.hub.getDevice(deviceId)) !== undefined;
        const next = { ...structuredClone(previous.spec), deviceIds: [...current, deviceId] };
        await commit(next, previous, existed ? new Set() : new Set([deviceId]));
        deps.logger?.info({ siteId, deviceId, devices: next.deviceIds }, "device joined site");
        return { created: true, site: await getSiteView(siteId) };
      });
    },
    async removeDevice(siteId, deviceId, options = {}) {
      checkSiteId(siteId);
      const id = deviceIdSchema.safeParse(deviceId);
      if (!id.success) throw new ValidationError(`device id "${deviceId.slice(0, 80)}"`, id.error);
      return withSiteLock(siteId, async () => {
        const previous = await storedSpec(siteId);
        const current = previous.spec.deviceIds;
        if (!current.includes(deviceId)) throw deviceNotInSite(siteId, deviceId);
        if (current.length === 1) {
          throw new RelayFleetError(
            "RF_ERR_ROLLOUT_LAST_DEVICE",
            `Device ${deviceId} is site ${siteId}'s only device; remove the site instead (relay-fleet sites remove ${siteId}). Nothing was changed.`,
          );
        }
        const next = { ...structuredClone(previous.spec), deviceIds: current.filter((d) => d !== deviceId) };
        await commit(next, previous);
        await deps.ledger.releaseDeviceClaims(siteId, [deviceId]);
        await detachDevice(deps, deviceId, { deleteDevice: options.deleteDevice === true });
        deps.logger?.info({ siteId, deviceId, devices: next.deviceIds }, "device left site");
        return getSiteView(siteId);
      });
    },
    reapplySite: async (siteId) => {
      checkSiteId(siteId);
      return withSiteLock(siteId, async () => {
        const { spec } = await storedSpec(siteId);
        return apply(spec);
      });
    },
    getSite: (siteId, options = {}) => getSiteView(siteId, options),
    async listSites() {
      const [rows, routes] = await Promise.all([deps.ledger.listSites(), deps.ledger.listRoutes()]);
      const out: SiteView[] = [];
      for (const row of rows) {
        const parsed = siteSpecSchema.safeParse(JSON.parse(row.spec ?? "null"));
        if (!parsed.success) continue;
        out.push(
          siteView(
            parsed.data,
            row,
            routes.filter((r) => r.siteId === row.siteId),
          ),
        );
      }
      return out.sort(bySiteId);
    },
    removeSite: async (siteId, options = {}) => {
      checkSiteId(siteId);
      return withSiteLock(siteId, async () => {
        const row = await deps.ledger.getSite(siteId);
        if (!row) throw siteNotFound(siteId);
        return offboardSite(deps, siteId, options);
      });
    },
    async addMapping(siteId, name, body) {
      checkMappingName(name);
      const parsed = putMappingBodySchema.safeParse(body);
      if (!parsed.success) throw new ValidationError(`mapping ${name}`, parsed.error);
      return changeMappings(siteId, (m) => {
        if (mappingExists(m, name)) {
          throw new RelayFleetError(
            "RF_ERR_ROLLOUT_MAPPING_EXISTS",
            `Site ${siteId} already has a mapping "${name}"; nothing was changed. Change some of its fields with PATCH /api/sites/${siteId}/mappings/${name} (relay-fleet map update), or replace it whole with PUT (relay-fleet map replace).`,
          );
        }
        m[name] = parsed.data;
      });
    },
    async updateMapping(siteId, name, body) {
      checkMappingName(name);
      const parsed = updateMappingBodySchema.safeParse(body);
      if (!parsed.success) throw new ValidationError(`mapping ${name}`, parsed.error);
      // `partial()` still fills defaults: take only the fields the body names.
      const given = Object.keys(body as object) as Array<keyof MappingSpec>;
      if (given.length === 0) {
        throw new ValidationError(`mapping ${name}`, [
          { path: "(body)", message: "name at least one field to change" },
        ]);
      }
      return changeMappings(siteId, (m) => {
        const current = mappingExists(m, name) ? m[name] : undefined;
        if (!current) throw mappingNotFound(siteId, name);
        const merged: Record<string, unknown> = { ...current };
        for (const key of given) merged[key] = parsed.data[key];
        const whole = mappingSpecSchema.safeParse(merged);
        if (!whole.success) throw new ValidationError(`mapping ${name}`, whole.error);
        m[name] = whole.data;
      });
    },
    async putMapping(siteId, name, body) {
      checkMappingName(name);
      const parsed = putMappingBodySchema.safeParse(body);
      if (!parsed.success) throw new ValidationError(`mapping ${name}`, parsed.error);
      return changeMappings(siteId, (m) => {
        m[name] = parsed.data;
      });
    },
    async deleteMapping(siteId, name) {
      checkMappingName(name);
      return changeMappings(siteId, (m) => {
        if (!mappingExists(m, name)) throw mappingNotFound(siteId, name);
        delete m[name];
      });
    },
    rotateKeys: async (siteId) => {
      checkSiteId(siteId);
      return withSiteLock(siteId, () => rotateSiteKeys(deps, siteId));
    },
    moveSite: async (siteId, body) => {
      checkSiteId(siteId);
      const parsed = moveSiteBodySchema.safeParse(body);
      if (!parsed.success) throw new ValidationError("move", parsed.error);
      const target = findNamespace(deps, parsed.data.namespace);
      return withSiteLock(siteId, () => moveSite(deps, siteId, target));
    },
    relayNamespaces: () => namespaceLoads(deps, { fresh: true }),
    reconcile: (options) => reconcileFleet(deps, options),
    async fleetStatus() {
      return (await rollout.fleetView()).sites;
    },
    fleetView: () => fleetStatusView(deps),
    handleDeviceEvent: (event) => handleDeviceEvent(rollout, event),
    offboardDeletedDevice: (siteId, deviceId) =>
      withSiteLock(siteId, async () => {
        const row = await deps.ledger.getSite(siteId);
        const stored = row ? storedSpecOf(row) : undefined;
        const devices = stored?.deviceIds ?? (row ? [row.deviceId] : []);
        if (!row || !devices.includes(deviceId)) return undefined;
        // One device of a redundant site is gone: the site keeps its others.
        if (stored && devices.length > 1) {
          const next = { ...stored, deviceIds: devices.filter((d) => d !== deviceId) };
          await apply(next);
          deps.logger?.info({ siteId, deviceId, devices: next.deviceIds }, "deleted device left site");
          return { action: "device-removed" as const, siteId };
        }
        await offboardSite(deps, siteId, { goneDevice: deviceId, deviceId });
        return { action: "offboarded" as const, siteId };
      }),
  };
  return rollout;
}
