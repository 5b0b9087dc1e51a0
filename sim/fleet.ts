/**
 * The whole hybrid relay pattern on one machine, every part a real process on loopback: the relay
 * emulator, the IoT Hub emulator, Azurite, the rollout service's HTTP API, gateways, and the edge
 * devices of each site in front of demo on-prem services. A redundant site is several devices
 * (ADR 0014), each with its own module identity and twin. Sites are onboarded through the rollout
 * API, never by writing configuration directly.
 *
 * What runs on a device is IoT Hub's business, as in production: start-up applies the fleet's
 * at-scale deployments (the code of `relay-fleet deployment apply`), and each device's edge-agent
 * stand-in (sim/edge-agent.ts) starts the relayListener process because its `$edgeAgent` desired
 * properties say so (with the device's own module identity, `EdgeHubConnectionString` and a CA
 * file, the way iotedgehubdev starts a module), restarts it as its restart policy says, and stops
 * it when the device stops matching the deployment (offboarding moves it to the retired one).
 *
 * The cloud parts hold no keys, as in Azure (ADR 0010): a local Microsoft Entra ID token issuer
 * (sim/identity-emulator, in this process: it stands for the platform's managed-identity endpoint)
 * gives each gateway and the rollout its own identity; the relay and IoT Hub emulators trust its
 * key and hold the role assignments the infrastructure template makes; the ledger is Azurite over
 * HTTPS with Entra ID tokens. Keys remain only where Azure keeps them: the edge (module identities,
 * the sites' Listen rules) and the simulation's own harness (the relay's Manage rule, IoT Hub's
 * owner policy, to read counters and hand modules their identities as the IoT Edge runtime does).
 *
 * `npm start` (sim/index.ts) and the end-to-end tests both drive the pattern through this file,
 * which onboards the sites and wires the rest together: the cloud parts and emulators are started
 * and supervised by cloud-parts.ts, the devices run in edge-devices.ts, and site-sync.ts keeps the
 * simulation in line with the ledger.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Azurite } from "./azurite.ts";
import { type NodeProcessSpec, type RunningProcess, startNodeProcess } from "./child-process.ts";
import { CloudParts } from "./cloud-parts.ts";
import { type DemoServices, startDemoServices } from "./demo-services.ts";
import { EdgeDevices } from "./edge-devices.ts";
import {
  type FleetOptions,
  type GatewayHandle,
  MODULE_ID,
  type PartLauncher,
  type SiteHandle,
  type SiteModuleHandle,
} from "./fleet-types.ts";
import type { HubInfo, ModuleTwinView } from "./hub-registry.ts";
import type { IdentityEmulator } from "./identity-emulator/index.ts";
import { freePortBlock } from "./ports.ts";
import { type RelayInfo, type RelayStatsView, readRelayStats } from "./relay-admin-client.ts";
import { publicPortsOf, RolloutApiError, type SiteView } from "./rollout-client.ts";
import { SiteSync, type SiteSyncResult } from "./site-sync.ts";
import { describePartEvent, type PartEvent, type PartState, Supervisor } from "./supervisor.ts";

export type {
  FleetOptions,
  GatewayHandle,
  HubInfo,
  PartEvent,
  PartState,
  RelayInfo,
  RelayStatsView,
  SiteHandle,
  SiteModuleHandle,
  SiteView,
};
export { MODULE_ID, RolloutApiError };

export class Fleet {
  readonly sites = new Map<string, SiteHandle>();
  readonly portRange: { from: number; to: number };
  /** Every process this fleet started, restarted ones included (tests check none is left). */
  readonly processes: RunningProcess[] = [];
  /** Restarts crashed parts (when `restartCrashed`) and records every crash. */
  readonly supervisor: Supervisor;
  /** The token issuer, the emulators, Azurite, the rollout service and the gateways. */
  readonly cloud: CloudParts;
  /** The simulated edge devices (an edge agent each) of every site. */
  private readonly devices: EdgeDevices;
  private readonly siteSync: SiteSync;
  private readonly logs: string;
  private stopped = false;

  private constructor(
    readonly options: FleetOptions,
    portRange: { from: number; to: number },
  ) {
    this.portRange = portRange;
    const d = options.stateDir;
    this.logs = join(d, "logs");
    // State holds keys (relay rules, device identities): this user only.
    for (const dir of ["logs", "relay", "iothub", "azurite", "device", "identity"])
      mkdirSync(join(d, dir), { recursive: true, mode: 0o700 });
    // The device owner's allowlist file (on a real device: /etc/relay-listener/allowlist.txt,
    // bind-mounted read-only); the demo services live on loopback.
    const allowlistFile = join(d, "device", "allowlist.txt");
    writeFileSync(allowlistFile, "127.0.0.1/32:*\n");
    this.supervisor = new Supervisor({
      restart: options.restartCrashed === true,
      ...(options.restartDelayMs !== undefined ? { initialDelayMs: options.restartDelayMs } : {}),
      onEvent: (event) => {
        this.progress(describePartEvent(event));
        options.onPartEvent?.(event);
      },
    });
    const launcher: PartLauncher = {
      spawn: (spec) => this.spawn(spec),
      logFile: (part) => join(this.logs, `${part}.log`),
      progress: (step) => this.progress(step),
    };
    this.cloud = new CloudParts({
      stateDir: d,
      gateways: options.gateways ?? 1,
      ledgerReloadMs: options.ledgerReloadMs ?? 2_000,
      portRange,
      hubQuotas: options.hubQuotas,
      launcher,
      supervisor: this.supervisor,
      siteOfPort: (port) => {
        for (const site of this.sites.values())
          if (Object.values(site.publicPorts).includes(port)) return site.siteId;
        return undefined;
      },
    });
    this.devices = new EdgeDevices({
      ...launcher,
      hub: () => this.cloud.hub,
      relay: () => this.cloud.relay,
      registry: () => this.cloud.registry,
      sites: this.sites,
      allowlistFile,
      moduleEnv: options.moduleEnv,
      supervisor: this.supervisor,
    });
    this.siteSync = new SiteSync({
      sites: this.sites,
      listSites: async () => (await this.api<{ sites: SiteView[] }>("GET", "/api/sites")).sites,
      startDevice: (siteId, deviceId) => this.devices.start(siteId, deviceId),
      stopDevice: (site, deviceId) => this.devices.stop(site, deviceId),
      reloadGateways: () => this.reloadGateways(),
      progress: (step) => this.progress(step),
    });
  }

  /** Starts every part and onboards `options.sites` demo sites. */
  static async start(options: FleetOptions): Promise<Fleet> {
    const gateways = options.gateways ?? 1;
    const hosts = Array.from({ length: gateways }, (_, i) => `127.0.0.${i + 1}`);
    const range = options.portRange ?? (await freePortBlock(Math.max(64, (options.sites ?? 2) * 4), hosts));
    const fleet = new Fleet(options, range);
    try {
      await fleet.cloud.startInfrastructure();
      for (let i = 0; i < gateways; i++) await fleet.startGateway(i);
      for (let i = 1; i <= (options.sites ?? 0); i++) await fleet.addSite(`plant-${i}`);
      return fleet;
    } catch (err) {
      await fleet.stop();
      throw err;
    }
  }

  /** The local Entra ID token issuer: each cloud part's managed identity. */
  get identity(): IdentityEmulator {
    return this.cloud.identity;
  }
  get relay(): RelayInfo {
    return this.cloud.relay;
  }
  get relayProcess(): RunningProcess {
    return this.cloud.relayProcess;
  }
  get hub(): HubInfo {
    return this.cloud.hub;
  }
  get hubProcess(): RunningProcess {
    return this.cloud.hubProcess;
  }
  get storage(): Azurite {
    return this.cloud.storage;
  }
  get rollout(): { url: string; functionKey: string; process: RunningProcess } {
    return this.cloud.rollout;
  }
  get gateways(): GatewayHandle[] {
    return this.cloud.gateways;
  }
  /** Demo services that the default site profile points at (sites added with the CLI). */
  get sharedServices(): DemoServices {
    return this.cloud.sharedServices;
  }
  /** The fleet status page, key included (it opens at once in a browser). */
  get statusPageUrl(): string {
    return this.cloud.statusPageUrl;
  }

  /** Where the logs of every part go (`<stateDir>/logs/<part>.log`). */
  get logsDir(): string {
    return this.logs;
  }

  /** Each part's state (up, restarting, stopped) and restart count, for the live view. */
  parts(): PartState[] {
    return this.supervisor.states();
  }

  private async spawn(spec: NodeProcessSpec): Promise<RunningProcess> {
    const proc = await startNodeProcess(spec);
    this.processes.push(proc);
    return proc;
  }

  private progress(step: string): void {
    this.options.onProgress?.(step);
  }

  /** Starts (or restarts, on the same port and with the same keys and state) the relay emulator. */
  startRelay(): Promise<void> {
    return this.cloud.startRelay();
  }

  /** Starts (or restarts, on the same ports with its saved state) the IoT Hub emulator. */
  startHub(): Promise<void> {
    return this.cloud.startHub();
  }

  /** Starts gateway `index` on 127.0.0.<index+1> (again, after a crash: same host, same ports). */
  startGateway(index: number): Promise<GatewayHandle> {
    return this.cloud.startGateway(index);
  }

  /** Asks every gateway to re-read the ledger now (they also do it on their own timer). */
  reloadGateways(): Promise<void> {
    return this.cloud.reloadGateways();
  }

  /** Calls the rollout HTTP API with the function key; throws RolloutApiError on a non-2xx answer. */
  api<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    return this.cloud.client.call<T>(method, path, body);
  }

  /**
   * Onboards a site through the rollout API with two mappings (`web`, `echo`) to its own demo
   * services, starts its module process(es), and tells the gateways to pick up its ports.
   */
  async addSite(
    siteId: string,
    extraMappings: Record<string, unknown> = {},
    mappingOptions: Record<string, unknown> = {},
    moduleEnv?: NodeJS.ProcessEnv,
  ): Promise<SiteHandle> {
    this.progress(`onboarding ${siteId} through the rollout API`);
    const services = await startDemoServices(siteId);
    const mappings: Record<string, unknown> = {
      web: { target: `127.0.0.1:${services.webPort}`, ...mappingOptions },
      echo: { target: `127.0.0.1:${services.echoPort}`, ...mappingOptions },
      ...extraMappings,
    };
    const deviceIds = Fleet.demoDeviceIds(siteId, this.options.modulesPerSite ?? 1);
    let view: SiteView;
    try {
      view = await this.api<SiteView>("POST", "/api/sites", { siteId, deviceIds, mappings });
    } catch (err) {
      // A site saved by an earlier run (persistent --state-dir) whose demo services now listen
      // on other ports: point its mappings at them, as an operator would.
      if (!(err instanceof RolloutApiError) || err.status !== 409) throw err;
      for (const [name, mapping] of Object.entries(mappings))
        await this.api("PUT", `/api/sites/${siteId}/mappings/${name}`, mapping);
      // …and give it the devices this run asks for (--modules-per-site may have grown).
      view = await this.api<SiteView>("GET", `/api/sites/${siteId}`);
      for (const deviceId of deviceIds)
        if (!view.devices.some((d) => d.deviceId === deviceId))
          view = await this.api<SiteView>("POST", `/api/sites/${siteId}/devices`, { deviceId });
    }
    const site: SiteHandle = {
      siteId,
      services,
      devices: view.devices.map((d) => d.deviceId),
      modules: [],
      publicPorts: publicPortsOf(view),
      mappings: view.mappings,
      ...(moduleEnv ? { moduleEnv } : {}),
    };
    this.sites.set(siteId, site);
    for (const deviceId of site.devices) await this.startDeviceModule(siteId, deviceId);
    await this.reloadGateways();
    return site;
  }

  /** The devices of a demo site: the site id, then `<site>.2` … (the rollout's own naming). */
  static demoDeviceIds(siteId: string, count: number): string[] {
    return Array.from({ length: Math.max(1, count) }, (_, i) => (i === 0 ? siteId : `${siteId}.${i + 1}`));
  }

  /**
   * Environment of a device's module, the way iotedgehubdev gives it to a module container: the
   * device's own module identity (default: the site's first device).
   */
  async moduleEnv(siteId: string, deviceId?: string, moduleId = MODULE_ID): Promise<NodeJS.ProcessEnv> {
    const device = deviceId ?? (await this.api<SiteView>("GET", `/api/sites/${siteId}`)).deviceId;
    return this.devices.moduleEnv(siteId, device, moduleId);
  }

  /** A device's module twin as IoT Hub has it (desired and reported; default: the site's first device). */
  async moduleTwin(siteId: string, deviceId?: string): Promise<ModuleTwinView> {
    const device = deviceId ?? (await this.api<SiteView>("GET", `/api/sites/${siteId}`)).deviceId;
    return this.cloud.registry.moduleTwin(device, MODULE_ID);
  }

  /** The relay emulator's counters (`GET /$admin/stats`, authorized with the Manage rule). */
  relayStats(): Promise<RelayStatsView> {
    return readRelayStats(this.relay);
  }

  /**
   * Starts the module of the site's device number `index` again now (after a kill), as `iotedge
   * restart` would: fault tests run without restarts and bring a killed module back with this.
   */
  async startModule(siteId: string, index: number): Promise<SiteModuleHandle> {
    const deviceId = this.sites.get(siteId)?.devices[index];
    if (deviceId === undefined) throw new Error(`site ${siteId} has no device #${index + 1}`);
    return this.startDeviceModule(siteId, deviceId);
  }

  /**
   * Switches a site's edge device on: its edge agent connects as `$edgeAgent` and starts what the
   * device's deployment says; resolves with the relayListener process once it runs. For a device
   * that is on already, restarts its relayListener now (`iotedge restart`).
   */
  startDeviceModule(siteId: string, deviceId: string): Promise<SiteModuleHandle> {
    return this.devices.start(siteId, deviceId);
  }

  /** Refreshes a site's public ports from the rollout API (after a mapping change). */
  async refreshSite(siteId: string): Promise<SiteHandle> {
    const site = this.sites.get(siteId);
    if (!site) throw new Error(`unknown site ${siteId}`);
    const view = await this.api<SiteView>("GET", `/api/sites/${siteId}`);
    site.publicPorts = publicPortsOf(view);
    site.mappings = view.mappings;
    return site;
  }

  /**
   * Brings the simulated edge devices in line with the ledger: each device of a site onboarded
   * from outside (the CLI, a DeviceCreated event) is switched on, and its edge agent starts the
   * module its deployment names; so does a device that joins a known site (`relay-fleet devices
   * add`); a device that left loses the module by its deployment (the retired one) or its identity
   * and is switched off, as is every device of an offboarded site; every
   * known site's mappings and public ports are refreshed. Returns the site ids started and
   * stopped, those whose mappings changed and those whose devices changed.
   */
  syncSites(): Promise<SiteSyncResult> {
    return this.siteSync.sync();
  }

  /** Stops everything: modules, gateways, rollout, emulators, storage, demo services. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.cloud.markStopped();
    this.supervisor.stop();
    await this.devices.stopAll();
    const procs: Array<RunningProcess | undefined> = [];
    for (const site of this.sites.values()) for (const m of site.modules) procs.push(m?.process);
    for (const g of this.gateways) procs.push(g?.process);
    await Promise.all(procs.map((p) => p?.stop("SIGTERM", 3_000)));
    await Promise.all([
      // Anything else still alive (a replaced handle, a test's half-done restart).
      ...this.processes.map((p) => p.stop("SIGTERM", 3_000)),
      this.cloud.stop(),
      ...[...this.sites.values()].map((s) => s.services?.close()),
    ]);
  }
}
