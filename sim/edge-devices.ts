/**
 * The simulated edge devices of the fleet's sites: one edge-agent stand-in (sim/edge-agent.ts) per
 * switched-on device, which connects as `$edgeAgent` and starts the relayListener module because
 * the device's deployment says so, with the device's own module identity (the way iotedgehubdev
 * hands a module its connection string). This file switches devices on and off and keeps each
 * site's module handles in line with what the agents started.
 */
import { readFileSync } from "node:fs";
import type { NodeProcessSpec, RunningProcess } from "./child-process.ts";
import { EDGE_AGENT_MODULE_ID, EdgeAgent } from "./edge-agent.ts";
import { MODULE_ID, type SiteHandle, type SiteModuleHandle } from "./fleet-types.ts";
import type { HubInfo, HubRegistry } from "./hub-registry.ts";
import { moduleImages } from "./module-images.ts";
import type { RelayInfo } from "./relay-admin-client.ts";
import type { Supervisor } from "./supervisor.ts";

/** What the devices need of the simulation around them (read at each use: parts restart). */
export interface EdgeDevicesContext {
  hub(): HubInfo;
  relay(): RelayInfo;
  registry(): HubRegistry;
  /** The simulation's sites: a module handle is kept only while its device is in its site. */
  readonly sites: Map<string, SiteHandle>;
  /** The device owner's allowlist file, as bind-mounted on a real device. */
  readonly allowlistFile: string;
  /** Extra environment of every module process (tests shorten timers). */
  readonly moduleEnv: NodeJS.ProcessEnv | undefined;
  readonly supervisor: Supervisor;
  spawn(spec: NodeProcessSpec): Promise<RunningProcess>;
  logFile(part: string): string;
  progress(step: string): void;
}

export class EdgeDevices {
  /** The edge-agent stand-in of each switched-on device (by device id). */
  private readonly agents = new Map<string, EdgeAgent>();
  private readonly resolveImage = moduleImages();

  constructor(private readonly ctx: EdgeDevicesContext) {}

  private connectionString(deviceId: string, moduleId: string, key: string): string {
    const hub = this.ctx.hub();
    return `HostName=${hub.hostName};GatewayHostName=127.0.0.1:${hub.mqttPort};DeviceId=${deviceId};ModuleId=${moduleId};SharedAccessKey=${key}`;
  }

  /**
   * Environment of a device's module, the way iotedgehubdev gives it to a module container: the
   * device's own module identity. The edge agent lays it over the deployment's `env`: on one
   * host, ports and files are the simulation's.
   */
  async moduleEnv(siteId: string, deviceId: string, moduleId = MODULE_ID): Promise<NodeJS.ProcessEnv> {
    const key = await this.ctx.registry().moduleKey(deviceId, moduleId);
    return {
      EdgeHubConnectionString: this.connectionString(deviceId, moduleId, key),
      EdgeModuleCACertificateFile: this.ctx.hub().caFile,
      RELAY_CA_FILE: this.ctx.relay().caFile,
      RELAY_ALLOWLIST_FILE: this.ctx.allowlistFile,
      METRICS_PORT: "0",
      METRICS_HOST: "127.0.0.1",
      REPORT_INTERVAL_MS: "1000",
      // Drain within the 3 s that stop() gives a module before SIGKILL (a keep-alive browser
      // connection would otherwise hold the default 20 s drain and end in a kill).
      SHUTDOWN_DRAIN_MS: "2000",
      ...this.ctx.moduleEnv,
      ...this.ctx.sites.get(siteId)?.moduleEnv,
    };
  }

  /**
   * Switches a site's edge device on: its edge agent connects as `$edgeAgent` and starts what the
   * device's deployment says; resolves with the relayListener process once it runs. For a device
   * that is on already, restarts its relayListener now (`iotedge restart`).
   */
  async start(siteId: string, deviceId: string): Promise<SiteModuleHandle> {
    const site = this.ctx.sites.get(siteId);
    if (!site) throw new Error(`unknown site ${siteId}`);
    const running = this.agents.get(deviceId);
    if (running) {
      await running.restartModule(MODULE_ID);
    } else {
      this.ctx.progress(`switching on device ${deviceId} of ${siteId}: its edge agent runs its deployment`);
      const agent = this.newAgent(
        site,
        deviceId,
        await this.ctx.registry().moduleKey(deviceId, EDGE_AGENT_MODULE_ID),
      );
      this.agents.set(deviceId, agent);
      try {
        await agent.start();
        await agent.waitRunning(MODULE_ID, 1, 90_000);
      } catch (err) {
        await this.stop(site, deviceId);
        throw err;
      }
    }
    const handle = site.modules.find((m) => m?.deviceId === deviceId);
    if (!handle) throw new Error(`relayListener on ${deviceId} did not start`);
    return handle;
  }

  private newAgent(site: SiteHandle, deviceId: string, key: string): EdgeAgent {
    const siteId = site.siteId;
    return new EdgeAgent({
      deviceId,
      connectionString: this.connectionString(deviceId, EDGE_AGENT_MODULE_ID, key),
      ca: readFileSync(this.ctx.hub().caFile, "utf8"),
      resolveImage: this.resolveImage,
      runtimeEnvironment: (moduleId) => this.moduleEnv(siteId, deviceId, moduleId),
      partName: (moduleId) => (moduleId === MODULE_ID ? `module-${deviceId}` : `${moduleId}-${deviceId}`),
      logFile: (part) => this.ctx.logFile(part),
      spawn: (spec) => {
        this.ctx.progress(`starting ${spec.name} (device ${deviceId}'s deployment runs it)`);
        return this.ctx.spawn(spec);
      },
      supervisor: this.ctx.supervisor,
      onModuleEvent: (event) => {
        if (event.type !== "started" || event.moduleId !== MODULE_ID) return;
        // A site removed, or this device taken out of it: no handle for the module.
        if (this.ctx.sites.get(siteId) !== site || !site.devices.includes(deviceId)) return;
        const metricsPort = event.process.ready.metricsPort;
        const handle: SiteModuleHandle = {
          index: Math.max(0, site.devices.indexOf(deviceId)),
          deviceId,
          process: event.process,
          healthPort: typeof metricsPort === "number" ? metricsPort : undefined,
        };
        const at = site.modules.findIndex((m) => m?.deviceId === deviceId);
        if (at >= 0) site.modules[at] = handle;
        else site.modules.splice(handle.index, 0, handle);
      },
      onLog: (line) => this.ctx.progress(line),
    });
  }

  /**
   * Switches off a device that left its site (or of a removed site): its edge agent stops, and
   * with it the module (when the retired deployment has not already removed it).
   */
  async stop(site: SiteHandle, deviceId: string): Promise<void> {
    const at = site.modules.findIndex((m) => m?.deviceId === deviceId);
    if (at >= 0) site.modules.splice(at, 1);
    const agent = this.agents.get(deviceId);
    this.agents.delete(deviceId);
    await agent?.stop();
  }

  /** Stops every device's edge agent (the simulation is stopping). */
  async stopAll(): Promise<void> {
    await Promise.all([...this.agents.values()].map((a) => a.stop()));
  }
}
