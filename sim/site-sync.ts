/**
 * Brings the simulation's sites in line with the ledger as the rollout API lists it: sites
 * onboarded from outside (the CLI, a DeviceCreated event) get their devices switched on, devices
 * that join or leave a known site are switched on or off, offboarded sites are stopped, and known
 * sites' mappings and public ports are refreshed. npm start's status loop calls it every tick.
 */
import { errorMessage } from "../lib/errors.ts";
import type { SiteHandle, SiteModuleHandle } from "./fleet-types.ts";
import { publicPortsOf, type SiteView } from "./rollout-client.ts";

/** How long a listed site may miss a public port before it is taken as it is (see stillOnboarding). */
const ONBOARDING_GRACE_MS = 30_000;

/** What a sync changed: site ids started, stopped, with changed mappings, with changed devices. */
export interface SiteSyncResult {
  started: string[];
  stopped: string[];
  changed: string[];
  devices: string[];
}

/** What the sync needs of the simulation around it. */
export interface SiteSyncContext {
  readonly sites: Map<string, SiteHandle>;
  listSites(): Promise<SiteView[]>;
  startDevice(siteId: string, deviceId: string): Promise<SiteModuleHandle>;
  stopDevice(site: SiteHandle, deviceId: string): Promise<void>;
  reloadGateways(): Promise<void>;
  progress(step: string): void;
}

export class SiteSync {
  /** Sites seen listed without all their public ports yet, since when (see stillOnboarding). */
  private readonly incompleteSince = new Map<string, number>();

  constructor(private readonly ctx: SiteSyncContext) {}

  /**
   * Each device of a site onboarded from outside is switched on, and its edge agent starts the
   * module its deployment names; so does a device that joins a known site (`relay-fleet devices
   * add`); a device that left loses the module by its deployment (the retired one) or its identity
   * and is switched off, as is every device of an offboarded site; every known site's mappings
   * and public ports are refreshed.
   */
  async sync(): Promise<SiteSyncResult> {
    const ctx = this.ctx;
    const sites = await ctx.listSites();
    const known = new Set(sites.map((s) => s.siteId));
    const result: SiteSyncResult = { started: [], stopped: [], changed: [], devices: [] };
    for (const view of sites) {
      const existing = ctx.sites.get(view.siteId);
      if (existing) await this.updateKnown(existing, view, result);
      else if (!this.stillOnboarding(view) && (await this.startListed(view)))
        result.started.push(view.siteId);
    }
    for (const [siteId, site] of ctx.sites) {
      if (known.has(siteId)) continue;
      ctx.sites.delete(siteId);
      await Promise.all([...site.modules].map((m) => m && ctx.stopDevice(site, m.deviceId)));
      await site.services?.close();
      result.stopped.push(siteId);
    }
    if (result.started.length || result.stopped.length) await ctx.reloadGateways();
    return result;
  }

  /** A site the simulation runs already: its mappings and its devices as listed now. */
  private async updateKnown(existing: SiteHandle, view: SiteView, result: SiteSyncResult): Promise<void> {
    const wanted = view.devices.map((d) => d.deviceId);
    if (JSON.stringify(existing.mappings) !== JSON.stringify(view.mappings)) {
      existing.mappings = view.mappings;
      existing.publicPorts = publicPortsOf(view);
      result.changed.push(view.siteId);
    }
    if (JSON.stringify(existing.devices) === JSON.stringify(wanted)) return;
    const gone = existing.devices.filter((d) => !wanted.includes(d));
    const joined = wanted.filter((d) => !existing.devices.includes(d));
    existing.devices = wanted;
    for (const d of gone) await this.ctx.stopDevice(existing, d);
    for (const d of joined) {
      try {
        await this.ctx.startDevice(view.siteId, d);
      } catch (err) {
        // Tried again at the next sync (its deployment has not reached it yet).
        this.ctx.progress(`device ${d} of ${view.siteId}: ${errorMessage(err)}`);
        existing.devices = existing.devices.filter((x) => x !== d);
      }
    }
    result.devices.push(view.siteId);
  }

  /** A site onboarded from outside: switches its devices on; false when one did not start. */
  private async startListed(view: SiteView): Promise<boolean> {
    const wanted = view.devices.map((d) => d.deviceId);
    this.ctx.sites.set(view.siteId, {
      siteId: view.siteId,
      devices: wanted,
      modules: [],
      publicPorts: publicPortsOf(view),
      mappings: view.mappings,
    });
    try {
      for (const d of wanted) await this.ctx.startDevice(view.siteId, d);
      return true;
    } catch (err) {
      // Tried again at the next sync (a device whose deployment has not reached it yet).
      this.ctx.progress(`${view.siteId}: ${errorMessage(err)}`);
      const site = this.ctx.sites.get(view.siteId);
      this.ctx.sites.delete(view.siteId);
      if (site) for (const d of wanted) await this.ctx.stopDevice(site, d);
      return false;
    }
  }

  /**
   * True while a newly listed site is between the rollout's "ledger" and "ports" steps: its row is
   * saved, but an enabled mapping has no public port yet. The next sync picks it up complete, so
   * "site online" never announces a site without its ports; after 30 s it is taken as it is (a
   * port range that is full leaves a mapping without a port for good).
   */
  private stillOnboarding(view: SiteView): boolean {
    const incomplete = Object.values(view.mappings).some((m) => m.enabled && m.publicPort === undefined);
    if (!incomplete) {
      this.incompleteSince.delete(view.siteId);
      return false;
    }
    const since = this.incompleteSince.get(view.siteId) ?? Date.now();
    this.incompleteSince.set(view.siteId, since);
    if (Date.now() - since < ONBOARDING_GRACE_MS) return true;
    this.incompleteSince.delete(view.siteId);
    return false;
  }
}
