/**
 * The rollout facade the Functions handlers, the CLI and the simulation call: validates input
 * with the one schema, serializes work per site inside an instance (across instances the ledger's
 * insert-if-absent and idempotent steps keep things consistent), and shapes readable answers.
 */
import { RelayFleetError } from "../../../../lib/errors.ts";
import type { RouteRow } from "../../../../lib/ledger/index.ts";
import { applySite } from "./apply.ts";
import type { RolloutDeps } from "./context.ts";
import { MODULE_ID } from "./desired-twin.ts";
import { type DeviceEventResult, handleDeviceEvent } from "./device-events.ts";
import { siteNotFound, ValidationError } from "./errors.ts";
import { type OffboardResult, offboardSite } from "./offboard.ts";
import { type DriftReport, reconcileFleet } from "./reconcile.ts";
import { type RotateResult, rotateSiteKeys } from "./rotate.ts";
import {
  createSiteBodySchema,
  type MappingSpec,
  putMappingBodySchema,
  type SiteSpec,
  siteSpecSchema,
} from "./schemas.ts";
import { type SiteStatus, siteStatusFromTwin } from "./status.ts";

/** A mapping as operators see it: its spec plus where it is published. */

/** Sites in natural order: plant-2 before plant-10 (what `sites list` and `status` show). */
const naturalCompare = new Intl.Collator("en", { numeric: true }).compare;
const bySiteId = (a: { siteId: string }, b: { siteId: string }) => naturalCompare(a.siteId, b.siteId);

export interface MappingView extends MappingSpec {
  publicPort?: number;
  publicHost?: string;
}

/** A site as the API and CLI show it (never any key). */
export interface SiteView {
  siteId: string;
  deviceId: string;
  profile: string;
  hybridConnection: string;
  relayEndpoint: string;
  createdAt: string;
  publicPorts: number[];
  mappings: Record<string, MappingView>;
  module?: SiteStatus;
}

function view(
  spec: SiteSpec,
  row: { hybridConnection: string; relayEndpoint: string; createdAt: string },
  routes: RouteRow[],
): SiteView {
  const mappings: Record<string, MappingView> = {};
  for (const [name, m] of Object.entries(spec.mappings)) {
    const r = routes.find((x) => x.portName === name);
    mappings[name] = {
      ...m,
      ...(r ? { publicPort: r.port } : {}),
      ...(r?.hostname ? { publicHost: r.hostname } : {}),
    };
  }
  return {
    siteId: spec.siteId,
    deviceId: spec.deviceId,
    profile: spec.profile,
    hybridConnection: row.hybridConnection,
    relayEndpoint: row.relayEndpoint,
    createdAt: row.createdAt,
    publicPorts: [...new Set(routes.map((r) => r.port))].sort((a, b) => a - b),
    mappings,
  };
}

export interface Rollout {
  readonly deps: RolloutDeps;
  /** Creates (201) or re-applies an identical existing site (200); 409 when it exists with another spec. */
  createSite(body: unknown): Promise<{ created: boolean; site: SiteView }>;
  /** Converges a site to its stored spec (retry after a crash). */
  reapplySite(siteId: string): Promise<SiteView>;
  getSite(siteId: string, options?: { withModule?: boolean }): Promise<SiteView>;
  listSites(): Promise<SiteView[]>;
  removeSite(siteId: string, options?: { deleteDevice?: boolean }): Promise<OffboardResult>;
  putMapping(siteId: string, name: string, body: unknown): Promise<SiteView>;
  deleteMapping(siteId: string, name: string): Promise<SiteView>;
  rotateKeys(siteId: string): Promise<RotateResult>;
  reconcile(options?: { repair?: boolean }): Promise<DriftReport>;
  /** One twin query: status of every site's module. */
  fleetStatus(): Promise<SiteStatus[]>;
  handleDeviceEvent(event: unknown): Promise<DeviceEventResult>;
  /** Site spec from a profile (device events, CLI). */
  specFromProfile(siteId: string, deviceId: string, profile?: string): SiteSpec;
}

/** Creates the rollout service over its dependencies. */
export function createRollout(deps: RolloutDeps): Rollout {
  const locks = new Map<string, Promise<unknown>>();
  const defaultProfile = deps.defaultProfile ?? "default";

  function withSiteLock<T>(siteId: string, fn: () => Promise<T>): Promise<T> {
    const prev = locks.get(siteId) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    locks.set(siteId, tail);
    void tail.then(() => {
      if (locks.get(siteId) === tail) locks.delete(siteId);
    });
    return run;
  }

  async function storedSpec(siteId: string) {
    const row = await deps.ledger.getSite(siteId);
    if (!row) throw siteNotFound(siteId);
    const parsed = siteSpecSchema.safeParse(JSON.parse(row.spec ?? "null"));
    if (!parsed.success) {
      throw new RelayFleetError(
        "RF_ERR_ROLLOUT_BAD_SPEC",
        `Site ${siteId}'s stored spec is unreadable; re-create the site.`,
        {
          status: 500,
        },
      );
    }
    return { row, spec: parsed.data };
  }

  function specFromProfile(siteId: string, deviceId: string, profile?: string): SiteSpec {
    const name = profile ?? defaultProfile;
    const p = deps.profiles[name];
    if (!p) {
      throw new RelayFleetError(
        "RF_ERR_ROLLOUT_UNKNOWN_PROFILE",
        `Site profile "${name}" is not configured.`,
        { status: 400 },
      );
    }
    return { siteId, deviceId, profile: name, mappings: structuredClone(p.mappings) };
  }

  async function apply(spec: SiteSpec): Promise<SiteView> {
    const applied = await applySite(deps, spec);
    const row = await deps.ledger.getSite(spec.siteId);
    if (!row) throw siteNotFound(spec.siteId);
    return view(applied.spec, row, applied.routes);
  }

  async function changeMappings(
    siteId: string,
    change: (m: SiteSpec["mappings"]) => void,
  ): Promise<SiteView> {
    return withSiteLock(siteId, async () => {
      const { spec } = await storedSpec(siteId);
      change(spec.mappings);
      return apply(spec);
    });
  }

  const rollout: Rollout = {
    deps,
    specFromProfile,
    async createSite(body) {
      const parsed = createSiteBodySchema.safeParse(body);
      if (!parsed.success) throw new ValidationError("site", parsed.error);
      const b = parsed.data;
      const deviceId = b.deviceId ?? b.siteId;
      const spec: SiteSpec = b.mappings
        ? { siteId: b.siteId, deviceId, profile: b.profile ?? defaultProfile, mappings: b.mappings }
        : specFromProfile(b.siteId, deviceId, b.profile);
      return withSiteLock(b.siteId, async () => {
        const row = await deps.ledger.getSite(b.siteId);
        if (row?.spec !== undefined && row.spec !== JSON.stringify(spec)) {
          throw new RelayFleetError(
            "RF_ERR_ROLLOUT_SITE_EXISTS",
            `Site ${b.siteId} already exists with other settings; change its mappings with PUT /api/sites/${b.siteId}/mappings/{name}.`,
            { status: 409 },
          );
        }
        return { created: row === undefined, site: await apply(spec) };
      });
    },
    reapplySite: (siteId) =>
      withSiteLock(siteId, async () => {
        const { spec } = await storedSpec(siteId);
        return apply(spec);
      }),
    async getSite(siteId, options = {}) {
      const { row, spec } = await storedSpec(siteId);
      const site = view(spec, row, await deps.ledger.listRoutes({ siteId }));
      if (options.withModule !== false) {
        const twin = await deps.hub.getModuleTwin(row.deviceId, MODULE_ID);
        if (twin) site.module = siteStatusFromTwin(twin);
      }
      return site;
    },
    async listSites() {
      const [rows, routes] = await Promise.all([deps.ledger.listSites(), deps.ledger.listRoutes()]);
      const out: SiteView[] = [];
      for (const row of rows) {
        const parsed = siteSpecSchema.safeParse(JSON.parse(row.spec ?? "null"));
        if (!parsed.success) continue;
        out.push(
          view(
            parsed.data,
            row,
            routes.filter((r) => r.siteId === row.siteId),
          ),
        );
      }
      return out.sort(bySiteId);
    },
    removeSite: (siteId, options = {}) =>
      withSiteLock(siteId, async () => {
        const row = await deps.ledger.getSite(siteId);
        if (!row) throw siteNotFound(siteId);
        return offboardSite(deps, siteId, options);
      }),
    async putMapping(siteId, name, body) {
      const parsed = putMappingBodySchema.safeParse(body);
      if (!parsed.success) throw new ValidationError(`mapping ${name}`, parsed.error);
      if (!/^[A-Za-z0-9_-]{1,64}$/.test(name)) {
        throw new RelayFleetError(
          "RF_ERR_ROLLOUT_INVALID",
          `Invalid mapping name "${name.slice(0, 80)}": use 1-64 letters, digits, '_' or '-'.`,
          { status: 400 },
        );
      }
      return changeMappings(siteId, (m) => {
        m[name] = parsed.data;
      });
    },
    deleteMapping(siteId, name) {
      return changeMappings(siteId, (m) => {
        if (!(name in m)) {
          throw new RelayFleetError(
            "RF_ERR_ROLLOUT_MAPPING_NOT_FOUND",
            `Site ${siteId} has no mapping "${name}".`,
            {
              status: 404,
            },
          );
        }
        delete m[name];
      });
    },
    rotateKeys: (siteId) => withSiteLock(siteId, () => rotateSiteKeys(deps, siteId)),
    reconcile: (options) => reconcileFleet(deps, options),
    async fleetStatus() {
      const twins = await deps.hub.queryModuleTwins(MODULE_ID);
      return twins
        .filter((t) => t.desired.relay !== undefined)
        .map(siteStatusFromTwin)
        .sort(bySiteId);
    },
    handleDeviceEvent: (event) => handleDeviceEvent(rollout, event),
  };
  return rollout;
}
