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
 * `npm start` (sim/index.ts) and the end-to-end tests both drive the pattern through this file.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { applyFleetDeployments, buildFleetDeployments } from "../cli/deployment.ts";
import { ROLES } from "../lib/entra/roles.ts";
import { errorMessage, RelayFleetError } from "../lib/errors.ts";
import { type Azurite, startAzurite } from "./azurite.ts";
import { type NodeProcessSpec, REPO_ROOT, type RunningProcess, startNodeProcess } from "./child-process.ts";
import { type DemoServices, startDemoServices } from "./demo-services.ts";
import { EDGE_AGENT_MODULE_ID, EdgeAgent } from "./edge-agent.ts";
import { type HubInfo, HubRegistry, type ModuleTwinView } from "./hub-registry.ts";
import { type IdentityEmulator, startIdentityEmulator } from "./identity-emulator/index.ts";
import { moduleImages } from "./module-images.ts";
import { freePort, freePortBlock, isPortFree } from "./ports.ts";
import {
  putRelayRoleAssignment,
  type RelayInfo,
  type RelayStatsView,
  readRelayStats,
} from "./relay-admin-client.ts";
import { publicPortsOf, RolloutApiError, RolloutClient, type SiteView } from "./rollout-client.ts";
import { type PartEvent, type PartState, Supervisor, type Watchable } from "./supervisor.ts";

export type { HubInfo, PartEvent, PartState, RelayInfo, RelayStatsView, SiteView };
export { RolloutApiError };

export const MODULE_ID = "relayListener";

/** The rollout's managed identity (the Functions app's) in the local token issuer. */
const ROLLOUT_IDENTITY = "rollout";
/** Gateway `index`'s managed identity (each instance its own, as each VM's would be). */
const gatewayIdentity = (index: number) => `gateway-${index + 1}`;

export interface FleetOptions {
  /** Where state, certificates and logs go. */
  stateDir: string;
  /** Demo sites to onboard at start (`plant-1` … `plant-N`). */
  sites?: number;
  /** Gateway instances, on 127.0.0.1, 127.0.0.2, … (the same public ports on each). */
  gateways?: number;
  /**
   * Edge devices per demo site, each its own IoT Edge device with its own relayListener module
   * identity, twin and process (two = a redundant pair): `plant-1`, `plant-1.2`, ….
   */
  modulesPerSite?: number;
  /** Public ports the rollout service allocates from (default: a free block found at start). */
  portRange?: { from: number; to: number };
  /** How often gateways re-read the ledger (they are also told to reload after each change). */
  ledgerReloadMs?: number;
  /** Called with a short line for each step, for progress output. */
  onProgress?: (step: string) => void;
  /** Extra environment for module processes (tests shorten timers). */
  moduleEnv?: NodeJS.ProcessEnv;
  /**
   * Start a part that exits on its own again, like IoT Edge's `restartPolicy: always` (npm start);
   * for modules, the edge agents follow their deployment's restart policy then. Off by default:
   * fault tests kill and restart parts (modules with `startModule`) themselves.
   */
  restartCrashed?: boolean;
  /** Each crash and restart of a part (whether or not `restartCrashed` is on). */
  onPartEvent?: (event: PartEvent) => void;
  /** First restart delay after a crash (doubles per crash in a row). */
  restartDelayMs?: number;
}

export interface GatewayHandle {
  index: number;
  host: string;
  adminPort: number;
  process: RunningProcess;
}

export interface SiteModuleHandle {
  /** Position of the device in the site's device list when the module started. */
  index: number;
  /** The edge device this module runs on (its own module identity and twin). */
  deviceId: string;
  process: RunningProcess;
  healthPort: number | undefined;
}

export interface SiteHandle {
  siteId: string;
  /** The site's own demo services; absent for a site added from outside (CLI, device event). */
  services?: DemoServices;
  /** The site's edge devices, as the rollout API last listed them. */
  devices: string[];
  /** One module per device, in the order of `devices`. */
  modules: SiteModuleHandle[];
  /** Mapping name → public port on the gateways. */
  publicPorts: Record<string, number>;
  /** Mapping name → target and public port, as the rollout API last answered. */
  mappings: SiteView["mappings"];
  /** Extra environment of this site's module processes (over `FleetOptions.moduleEnv`). */
  moduleEnv?: NodeJS.ProcessEnv;
}

function str(line: Record<string, unknown>, key: string): string {
  const v = line[key];
  if (typeof v !== "string") throw new Error(`readiness line has no ${key}`);
  return v;
}

function num(line: Record<string, unknown>, key: string): number {
  const v = line[key];
  if (typeof v !== "number") throw new Error(`readiness line has no ${key}`);
  return v;
}

/**
 * A key this simulation owns (the relay's root rule, IoT Hub's owner policy): made once, kept in a
 * file only this user can read next to the part's state, and handed to the part in its environment.
 */
function ownedKey(file: string): string {
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  const key = randomBytes(32).toString("base64");
  writeFileSync(file, `${key}\n`, { mode: 0o600 });
  return key;
}

function watchable(proc: RunningProcess): Watchable {
  return { exited: proc.exited, intended: () => proc.stopRequested, pid: proc.child.pid };
}

export class Fleet {
  /** The local Entra ID token issuer: each cloud part's managed identity. */
  identity!: IdentityEmulator;
  relay!: RelayInfo;
  relayProcess!: RunningProcess;
  hub!: HubInfo;
  hubProcess!: RunningProcess;
  storage!: Azurite;
  rollout!: { url: string; functionKey: string; process: RunningProcess };
  readonly gateways: GatewayHandle[] = [];
  readonly sites = new Map<string, SiteHandle>();
  readonly portRange: { from: number; to: number };
  /** Every process this fleet started, restarted ones included (tests check none is left). */
  readonly processes: RunningProcess[] = [];
  /** Demo services that the default site profile points at (sites added with the CLI). */
  sharedServices!: DemoServices;
  /** Restarts crashed parts (when `restartCrashed`) and records every crash. */
  readonly supervisor: Supervisor;
  private registry!: HubRegistry;
  /** The edge-agent stand-in of each switched-on device (by device id). */
  private readonly agents = new Map<string, EdgeAgent>();
  private readonly resolveImage = moduleImages();
  private client!: RolloutClient;
  private readonly dirs: {
    logs: string;
    relay: string;
    hub: string;
    azurite: string;
    device: string;
    identity: string;
  };
  private stopped = false;
  /** Sites seen listed without all their public ports yet, since when (see stillOnboarding). */
  private readonly incompleteSince = new Map<string, number>();
  private hubWebhook: string | undefined;
  private rolloutPort = 0;

  private constructor(
    readonly options: FleetOptions,
    portRange: { from: number; to: number },
  ) {
    this.portRange = portRange;
    const d = options.stateDir;
    this.dirs = {
      logs: join(d, "logs"),
      relay: join(d, "relay"),
      hub: join(d, "iothub"),
      azurite: join(d, "azurite"),
      device: join(d, "device"),
      identity: join(d, "identity"),
    };
    // State holds keys (relay rules, device identities): this user only.
    for (const dir of Object.values(this.dirs)) mkdirSync(dir, { recursive: true, mode: 0o700 });
    // The device owner's allowlist file (on a real device: /etc/relay-listener/allowlist.txt,
    // bind-mounted read-only); the demo services live on loopback.
    writeFileSync(join(this.dirs.device, "allowlist.txt"), "127.0.0.1/32:*\n");
    this.supervisor = new Supervisor({
      restart: options.restartCrashed === true,
      ...(options.restartDelayMs !== undefined ? { initialDelayMs: options.restartDelayMs } : {}),
      onEvent: (event) => {
        if (event.type === "crashed")
          this.progress(
            `${event.part} exited (${event.code})${event.restartInMs >= 0 ? `: restarting in ${event.restartInMs} ms` : ""}`,
          );
        else if (event.type === "restarted")
          this.progress(`${event.part} restarted (restart #${event.restarts})`);
        else this.progress(`${event.part} failed to restart: ${event.error}`);
        options.onPartEvent?.(event);
      },
    });
  }

  /** Starts every part and onboards `options.sites` demo sites. */
  static async start(options: FleetOptions): Promise<Fleet> {
    const gateways = options.gateways ?? 1;
    const hosts = Array.from({ length: gateways }, (_, i) => `127.0.0.${i + 1}`);
    const range = options.portRange ?? (await freePortBlock(Math.max(64, (options.sites ?? 2) * 4), hosts));
    const fleet = new Fleet(options, range);
    try {
      await fleet.startInfrastructure();
      for (let i = 0; i < gateways; i++) await fleet.startGateway(i);
      for (let i = 1; i <= (options.sites ?? 0); i++) await fleet.addSite(`plant-${i}`);
      return fleet;
    } catch (err) {
      await fleet.stop();
      throw err;
    }
  }

  /** Where the logs of every part go (`<stateDir>/logs/<part>.log`). */
  get logsDir(): string {
    return this.dirs.logs;
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

  /** Watches a started part; a crash starts it again through `restart` (when enabled). */
  private supervise(part: string, proc: RunningProcess, restart: () => Promise<unknown>): void {
    if (this.stopped) return;
    this.supervisor.watch(part, watchable(proc), restart);
  }

  private progress(step: string): void {
    this.options.onProgress?.(step);
  }

  private log(name: string): string {
    return join(this.dirs.logs, `${name}.log`);
  }

  /** The issuer's public key, which the relay and IoT Hub emulators trust (`--trust-file`). */
  private get trustFile(): string {
    return join(this.dirs.identity, "trust.json");
  }

  private async startInfrastructure(): Promise<void> {
    this.progress("starting the token issuer (managed identities for the gateways and the rollout)");
    this.identity = await startIdentityEmulator({
      trustFile: this.trustFile,
      identities: [ROLLOUT_IDENTITY],
    });

    // The IoT Hub emulator posts device events to the rollout API, and the rollout API needs the
    // hub: fix the API's port and key first so the hub can start before it.
    this.rolloutPort = await freePort();
    const functionKey = randomBytes(24).toString("base64url");
    this.client = new RolloutClient(`http://127.0.0.1:${this.rolloutPort}`, functionKey);
    const eventGridUrl = `http://127.0.0.1:${this.rolloutPort}/runtime/webhooks/EventGrid?functionName=device-lifecycle&code=${functionKey}`;

    // The three services need nothing of each other: started side by side (start-up time).
    this.progress("starting the relay emulator (Azure Relay, wss)");
    this.progress("starting the IoT Hub emulator (MQTT + REST over TLS)");
    this.progress("starting Azurite (Table storage for the port ledger, HTTPS with Entra ID)");
    const started = await Promise.allSettled([
      this.startRelay(),
      this.startHub(eventGridUrl),
      this.startStorage(),
    ]);
    // Every start has ended (so stop() finds each process); the first failure is the error.
    for (const result of started) if (result.status === "rejected") throw result.reason;

    // A site onboarded from outside (the CLI, a DeviceCreated event) gets the default profile:
    // web and echo mappings to these shared demo services.
    this.sharedServices = await startDemoServices("default-profile", "127.0.0.1", (port) => {
      for (const site of this.sites.values())
        if (Object.values(site.publicPorts).includes(port)) return site.siteId;
      return undefined;
    });

    this.progress("starting the rollout service (Functions handlers over HTTP)");
    await this.startRollout();

    this.progress("applying the fleet's IoT Edge deployments (relay-fleet deployment apply)");
    await this.applyDeployments();
  }

  /**
   * Creates the base and retired at-scale deployments from deployment.template.json with the code
   * of `relay-fleet deployment apply`. A saved state dir may hold a deployment of the same version
   * with other content (the template was edited): the simulation's own hub takes the new one.
   */
  private async applyDeployments(): Promise<void> {
    let built: ReturnType<typeof buildFleetDeployments>;
    try {
      built = buildFleetDeployments(REPO_ROOT, "amd64", process.env);
    } catch (err) {
      // A developer's .env that the template cannot be expanded with: the example's values do.
      this.progress(
        `the deployment template does not expand with .env (${errorMessage(err)}): using .env.example`,
      );
      built = buildFleetDeployments(REPO_ROOT, "amd64", { ...process.env, DOTENV_FILE: ".env.example" });
    }
    try {
      await applyFleetDeployments(this.registry.service, built);
    } catch (err) {
      if (!(err instanceof RelayFleetError && err.code === "RF_ERR_DEPLOYMENT")) throw err;
      for (const d of built) await this.registry.service.removeConfiguration(d.id).catch(() => undefined);
      await applyFleetDeployments(this.registry.service, built);
    }
  }

  /** Starts (or restarts, on the same port with its saved tables) Azurite's table service. */
  async startStorage(): Promise<void> {
    const storage = await startAzurite({
      // HTTPS and Entra ID tokens: the gateways and the rollout reach the ledger by identity.
      oauth: true,
      dir: this.dirs.azurite,
      logFile: this.log("azurite"),
      ...(this.storage ? { port: this.storage.port } : {}),
    });
    this.storage = storage;
    if (this.stopped) {
      await storage.close();
      return;
    }
    this.supervisor.watch(
      "azurite",
      { exited: storage.exited, intended: () => storage.closing, pid: storage.pid },
      () => this.startStorage(),
    );
  }

  /** Starts (or restarts, on the same port and with the same function key) the rollout service. */
  async startRollout(): Promise<void> {
    const profiles = {
      default: {
        mappings: {
          web: { target: `127.0.0.1:${this.sharedServices.webPort}` },
          echo: { target: `127.0.0.1:${this.sharedServices.echoPort}` },
        },
      },
    };
    const proc = await this.spawn({
      name: "rollout",
      script: "cloud/functions/src/serve-local.ts",
      logFile: this.log("rollout"),
      env: {
        ...this.rolloutEnv(),
        ROLLOUT_PORT: String(this.rolloutPort),
        ROLLOUT_FUNCTION_KEY: this.client.functionKey,
        // The Functions app's own setting; the local server checks it as the host would.
        RECONCILE_SCHEDULE: "0 */5 * * * *",
        SITE_PROFILES: JSON.stringify(profiles),
      },
    });
    this.rollout = { url: str(proc.ready, "url"), functionKey: this.client.functionKey, process: proc };
    this.supervise("rollout", proc, () => this.startRollout());
  }

  /**
   * Environment of the rollout service: its managed identity and where things are, no key (IoT
   * Hub by IOTHUB_HOST_NAME, the ledger by LEDGER_TABLE_URL, the relay through its admin API with
   * the identity; ROLLOUT_RELAY_SEND_AUTH defaults to entra, so no Send rule is made).
   */
  rolloutEnv(): NodeJS.ProcessEnv {
    return {
      ...this.identity.envFor(ROLLOUT_IDENTITY),
      IOTHUB_HOST_NAME: this.hub.hostName,
      IOTHUB_REST_PORT: String(this.hub.httpsPort),
      IOTHUB_CA_FILE: this.hub.caFile,
      LEDGER_TABLE_URL: this.storage.tableEndpoint,
      LEDGER_CA_FILE: this.storage.caFile,
      RELAY_ENDPOINT: this.relay.endpoint,
      RELAY_CA_FILE: this.relay.caFile,
      RELAY_TLS: "1",
      RELAY_PORT_RANGES: `${this.portRange.from}-${this.portRange.to}`,
      // The status page reads the gateways' metrics; startGateway writes where they are.
      GATEWAY_METRICS_FILE: this.gatewayMetricsFile,
      // `relay-fleet audit` and the site page: the modules' records kept by the IoT Hub emulator,
      // the gateways' from their log files (in Azure: storage and Log Analytics, docs/audit.md).
      AUDIT_FROM_IOTHUB_EMULATOR: "1",
      AUDIT_GATEWAY_LOG_FILES: Array.from({ length: this.options.gateways ?? 1 }, (_, i) =>
        this.log(`gateway-${i + 1}`),
      ).join(","),
    };
  }

  /** `{"urls":[…]}` of the gateways' /metrics, for the rollout service's status page. */
  get gatewayMetricsFile(): string {
    return join(this.options.stateDir, "gateway-metrics.json");
  }

  /** The fleet status page, key included (it opens at once in a browser). */
  get statusPageUrl(): string {
    return `${this.rollout.url}/api/fleet?code=${encodeURIComponent(this.rollout.functionKey)}`;
  }

  /** Starts (or restarts, on the same port and with the same keys and state) the relay emulator. */
  async startRelay(): Promise<void> {
    // The state file and the CA in --dir make a restart look like an outage to clients: the same
    // hybrid connections, rules, keys and CA come back on the same port.
    const args = [
      "--tls",
      "--dir",
      this.dirs.relay,
      "--state-file",
      join(this.dirs.relay, "state.json"),
      "--trust-file",
      this.trustFile,
    ];
    // A key in the environment, never on the command line (`ps` shows arguments to everyone).
    const manageKey = ownedKey(join(this.dirs.relay, "manage.key"));
    const env: NodeJS.ProcessEnv = { RELAY_EMULATOR_MANAGE_KEY: manageKey };
    // The relay's endpoint is written into ledger rows and module twins: a persistent state dir
    // must find the relay on the same port next run, or every saved site would point nowhere.
    const portFile = join(this.dirs.relay, "port.json");
    if (this.relay) args.push("--port", String(new URL(this.relay.url).port));
    else if (existsSync(portFile)) {
      const saved = (JSON.parse(readFileSync(portFile, "utf8")) as { port?: unknown }).port;
      if (typeof saved === "number" && (await isPortFree(saved))) args.push("--port", String(saved));
      else
        this.progress(`the relay's previous port ${String(saved)} is taken: saved sites need re-onboarding`);
    }
    const proc = await this.spawn({
      name: "relay-emulator",
      script: "sim/relay-emulator/main.ts",
      args,
      env,
      logFile: this.log("relay-emulator"),
    });
    this.relayProcess = proc;
    this.relay = {
      url: str(proc.ready, "url"),
      endpoint: str(proc.ready, "endpoint"),
      caFile: str(proc.ready, "caFile"),
      manageKeyName: str(proc.ready, "manageKeyName"),
      manageKey,
    };
    writeFileSync(portFile, `${JSON.stringify({ port: Number(new URL(this.relay.url).port) })}\n`);
    // What infra/main.json assigns the rollout: Azure Relay Owner here, the emulator's stand-in for
    // ARM Contributor. By a fixed name, so a saved state is updated, not added to.
    await putRelayRoleAssignment(this.relay, "sim-rollout-relay-owner", {
      principalId: this.identity.addIdentity(ROLLOUT_IDENTITY).principalId,
      roleDefinitionId: ROLES.relayOwner.id,
    });
    this.supervise("relay-emulator", proc, () => this.startRelay());
  }

  /** Starts (or restarts, on the same ports with its saved state) the IoT Hub emulator. */
  async startHub(eventGridUrl?: string): Promise<void> {
    // The rollout's IoT Hub data roles, as infra/main.json assigns them (given at every start: the
    // emulator keeps role assignments in memory only).
    const rollout = this.identity.addIdentity(ROLLOUT_IDENTITY).principalId;
    const args = [
      "--dir",
      this.dirs.hub,
      "--state-file",
      join(this.dirs.hub, "state.json"),
      "--trust-file",
      this.trustFile,
      "--role",
      `${rollout}=${ROLES.iotHubRegistryContributor.id}`,
      "--role",
      `${rollout}=${ROLES.iotHubTwinContributor.id}`,
    ];
    if (this.hub)
      args.push("--mqtt-port", String(this.hub.mqttPort), "--https-port", String(this.hub.httpsPort));
    const webhook = eventGridUrl ?? this.hubWebhook;
    this.hubWebhook = webhook;
    const ownerKey = ownedKey(join(this.dirs.hub, "owner.key"));
    const proc = await this.spawn({
      name: "iothub-emulator",
      script: "sim/iothub-emulator/main.ts",
      args,
      // The webhook URL carries the function key: environment, not arguments.
      env: {
        IOTHUB_EMULATOR_OWNER_KEY: ownerKey,
        ...(webhook ? { IOTHUB_EMULATOR_EVENT_GRID_WEBHOOK: webhook } : {}),
      },
      logFile: this.log("iothub-emulator"),
    });
    this.hubProcess = proc;
    const hostName = str(proc.ready, "hostName");
    this.hub = {
      hostName,
      mqttPort: num(proc.ready, "mqttPort"),
      httpsPort: num(proc.ready, "httpsPort"),
      caFile: str(proc.ready, "caFile"),
      serviceConnectionString: `HostName=${hostName};SharedAccessKeyName=iothubowner;SharedAccessKey=${ownerKey}`,
    };
    this.registry = new HubRegistry(this.hub);
    this.supervise("iothub-emulator", proc, () => this.startHub());
  }

  /** Starts gateway `index` on 127.0.0.<index+1> (again, after a crash: same host, same ports). */
  async startGateway(index: number): Promise<GatewayHandle> {
    const host = `127.0.0.${index + 1}`;
    this.progress(`starting gateway #${index + 1} on ${host}`);
    // Azure Relay Sender for its identity at the namespace, as infra/main.json assigns it (a
    // rotation moves a site to a new hybrid connection, ADR 0009, so not per hybrid connection).
    await putRelayRoleAssignment(this.relay, `sim-${gatewayIdentity(index)}-relay-sender`, {
      principalId: this.identity.addIdentity(gatewayIdentity(index)).principalId,
      roleDefinitionId: ROLES.relaySender.id,
    });
    const proc = await this.spawn({
      name: `gateway-${index + 1}`,
      script: "cloud/gateway/src/main.ts",
      logFile: this.log(`gateway-${index + 1}`),
      isReady: (line) => line.event === "started",
      // Its managed identity, no key: Azure Relay Sender (GATEWAY_RELAY_AUTH defaults to entra),
      // the ledger and its status table by LEDGER_TABLE_URL. Azurite checks no roles (ADR 0010).
      env: {
        ...this.identity.envFor(gatewayIdentity(index)),
        LEDGER_TABLE_URL: this.storage.tableEndpoint,
        LEDGER_CA_FILE: this.storage.caFile,
        RELAY_CA_FILE: this.relay.caFile,
        GATEWAY_BIND_HOST: host,
        GATEWAY_INSTANCE_ID: `gateway-${index + 1}`,
        GATEWAY_HEALTH_HOST: "127.0.0.1",
        GATEWAY_HEALTH_PORT: "0",
        LEDGER_RELOAD_INTERVAL_MS: String(this.options.ledgerReloadMs ?? 2_000),
      },
    });
    const admin = proc.earlyLines.find((l) => l.event === "admin-listening");
    const handle = { index, host, adminPort: admin ? num(admin, "port") : 0, process: proc };
    this.gateways[index] = handle;
    // A restarted gateway has a new admin port: the file always lists the current ones.
    const urls = this.gateways.filter(Boolean).map((g) => `http://127.0.0.1:${g.adminPort}/metrics`);
    writeFileSync(this.gatewayMetricsFile, `${JSON.stringify({ urls })}\n`);
    this.supervise(`gateway-${index + 1}`, proc, () => this.startGateway(index));
    return handle;
  }

  /** Calls the rollout HTTP API with the function key; throws RolloutApiError on a non-2xx answer. */
  api<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    return this.client.call<T>(method, path, body);
  }

  /** Asks every gateway to re-read the ledger now (they also do it on their own timer). */
  async reloadGateways(): Promise<void> {
    await Promise.all(
      this.gateways
        .filter((g) => g && g.process.child.exitCode === null)
        .map((g) =>
          fetch(`http://127.0.0.1:${g.adminPort}/reload`, { method: "POST" })
            .then((r) => r.text())
            .catch(() => ""),
        ),
    );
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

  private connectionString(deviceId: string, moduleId: string, key: string): string {
    return `HostName=${this.hub.hostName};GatewayHostName=127.0.0.1:${this.hub.mqttPort};DeviceId=${deviceId};ModuleId=${moduleId};SharedAccessKey=${key}`;
  }

  /**
   * Environment of a device's module, the way iotedgehubdev gives it to a module container: the
   * device's own module identity (default: the site's first device). The edge agent lays it over
   * the deployment's `env`: on one host, ports and files are the simulation's.
   */
  async moduleEnv(siteId: string, deviceId?: string, moduleId = MODULE_ID): Promise<NodeJS.ProcessEnv> {
    const device = deviceId ?? (await this.api<SiteView>("GET", `/api/sites/${siteId}`)).deviceId;
    const key = await this.registry.moduleKey(device, moduleId);
    return {
      EdgeHubConnectionString: this.connectionString(device, moduleId, key),
      EdgeModuleCACertificateFile: this.hub.caFile,
      RELAY_CA_FILE: this.relay.caFile,
      // The device owner's local allowlist file (written by the constructor).
      RELAY_ALLOWLIST_FILE: join(this.dirs.device, "allowlist.txt"),
      METRICS_PORT: "0",
      METRICS_HOST: "127.0.0.1",
      REPORT_INTERVAL_MS: "1000",
      // Drain within the 3 s that stop() gives a module before SIGKILL (a keep-alive browser
      // connection would otherwise hold the default 20 s drain and end in a kill).
      SHUTDOWN_DRAIN_MS: "2000",
      ...this.options.moduleEnv,
      ...this.sites.get(siteId)?.moduleEnv,
    };
  }

  /** A device's module twin as IoT Hub has it (desired and reported; default: the site's first device). */
  async moduleTwin(siteId: string, deviceId?: string): Promise<ModuleTwinView> {
    const device = deviceId ?? (await this.api<SiteView>("GET", `/api/sites/${siteId}`)).deviceId;
    return this.registry.moduleTwin(device, MODULE_ID);
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
  async startDeviceModule(siteId: string, deviceId: string): Promise<SiteModuleHandle> {
    const site = this.sites.get(siteId);
    if (!site) throw new Error(`unknown site ${siteId}`);
    const running = this.agents.get(deviceId);
    if (running) {
      await running.restartModule(MODULE_ID);
    } else {
      this.progress(`switching on device ${deviceId} of ${siteId}: its edge agent runs its deployment`);
      const agent = this.newAgent(
        site,
        deviceId,
        await this.registry.moduleKey(deviceId, EDGE_AGENT_MODULE_ID),
      );
      this.agents.set(deviceId, agent);
      try {
        await agent.start();
        await agent.waitRunning(MODULE_ID, 1, 90_000);
      } catch (err) {
        await this.stopDeviceModule(site, deviceId);
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
      ca: readFileSync(this.hub.caFile, "utf8"),
      resolveImage: this.resolveImage,
      runtimeEnvironment: (moduleId) => this.moduleEnv(siteId, deviceId, moduleId),
      partName: (moduleId) => (moduleId === MODULE_ID ? `module-${deviceId}` : `${moduleId}-${deviceId}`),
      logFile: (part) => this.log(part),
      spawn: (spec) => {
        this.progress(`starting ${spec.name} (device ${deviceId}'s deployment runs it)`);
        return this.spawn(spec);
      },
      supervisor: this.supervisor,
      onModuleEvent: (event) => {
        if (event.type !== "started" || event.moduleId !== MODULE_ID) return;
        // A site removed, or this device taken out of it: no handle for the module.
        if (this.sites.get(siteId) !== site || !site.devices.includes(deviceId)) return;
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
      onLog: (line) => this.progress(line),
    });
  }

  /**
   * Switches off a device that left its site (or of a removed site): its edge agent stops, and
   * with it the module (when the retired deployment has not already removed it).
   */
  private async stopDeviceModule(site: SiteHandle, deviceId: string): Promise<void> {
    const at = site.modules.findIndex((m) => m?.deviceId === deviceId);
    if (at >= 0) site.modules.splice(at, 1);
    const agent = this.agents.get(deviceId);
    this.agents.delete(deviceId);
    await agent?.stop();
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
  async syncSites(): Promise<{ started: string[]; stopped: string[]; changed: string[]; devices: string[] }> {
    const { sites } = await this.api<{ sites: SiteView[] }>("GET", "/api/sites");
    const known = new Set(sites.map((s) => s.siteId));
    const started: string[] = [];
    const stopped: string[] = [];
    const changed: string[] = [];
    const devices: string[] = [];
    for (const view of sites) {
      const wanted = view.devices.map((d) => d.deviceId);
      const existing = this.sites.get(view.siteId);
      if (existing) {
        if (JSON.stringify(existing.mappings) !== JSON.stringify(view.mappings)) {
          existing.mappings = view.mappings;
          existing.publicPorts = publicPortsOf(view);
          changed.push(view.siteId);
        }
        if (JSON.stringify(existing.devices) !== JSON.stringify(wanted)) {
          const gone = existing.devices.filter((d) => !wanted.includes(d));
          const joined = wanted.filter((d) => !existing.devices.includes(d));
          existing.devices = wanted;
          for (const d of gone) await this.stopDeviceModule(existing, d);
          for (const d of joined) {
            try {
              await this.startDeviceModule(view.siteId, d);
            } catch (err) {
              // Tried again at the next sync (its deployment has not reached it yet).
              this.progress(`device ${d} of ${view.siteId}: ${errorMessage(err)}`);
              existing.devices = existing.devices.filter((x) => x !== d);
            }
          }
          devices.push(view.siteId);
        }
        continue;
      }
      if (this.stillOnboarding(view)) continue;
      this.sites.set(view.siteId, {
        siteId: view.siteId,
        devices: wanted,
        modules: [],
        publicPorts: publicPortsOf(view),
        mappings: view.mappings,
      });
      try {
        for (const d of wanted) await this.startDeviceModule(view.siteId, d);
      } catch (err) {
        // Tried again at the next sync (a device whose deployment has not reached it yet).
        this.progress(`${view.siteId}: ${errorMessage(err)}`);
        const site = this.sites.get(view.siteId);
        this.sites.delete(view.siteId);
        if (site) for (const d of wanted) await this.stopDeviceModule(site, d);
        continue;
      }
      started.push(view.siteId);
    }
    for (const [siteId, site] of this.sites) {
      if (known.has(siteId)) continue;
      this.sites.delete(siteId);
      await Promise.all([...site.modules].map((m) => m && this.stopDeviceModule(site, m.deviceId)));
      await site.services?.close();
      stopped.push(siteId);
    }
    if (started.length || stopped.length) await this.reloadGateways();
    return { started, stopped, changed, devices };
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
    if (Date.now() - since < 30_000) return true;
    this.incompleteSince.delete(view.siteId);
    return false;
  }

  /** Stops everything: modules, gateways, rollout, emulators, storage, demo services. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.supervisor.stop();
    await Promise.all([...this.agents.values()].map((a) => a.stop()));
    const procs: Array<RunningProcess | undefined> = [];
    for (const site of this.sites.values()) for (const m of site.modules) procs.push(m?.process);
    for (const g of this.gateways) procs.push(g?.process);
    await Promise.all(procs.map((p) => p?.stop("SIGTERM", 3_000)));
    await Promise.all([
      // Anything else still alive (a replaced handle, a test's half-done restart).
      ...this.processes.map((p) => p.stop("SIGTERM", 3_000)),
      this.rollout?.process.stop("SIGTERM", 3_000),
      this.hubProcess?.stop("SIGTERM", 3_000),
      this.relayProcess?.stop("SIGTERM", 3_000),
      this.storage?.close(),
      this.identity?.close(),
      this.sharedServices?.close(),
      ...[...this.sites.values()].map((s) => s.services?.close()),
    ]);
  }
}
