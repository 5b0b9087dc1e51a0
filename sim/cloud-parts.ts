/**
 * The cloud side of the simulation and the Azure emulators it stands on, each a supervised
 * process on loopback: the local Entra ID token issuer, the relay emulator, the IoT Hub emulator,
 * Azurite, the rollout service and the gateways. Each starts (and after a crash restarts) on the
 * same ports with its saved state, and gets the role assignments infra/main.json makes in Azure.
 */
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROLES } from "../lib/entra/roles.ts";
import type { HubSku } from "../lib/hub-fleet-size.ts";
import { type Azurite, startAzurite } from "./azurite.ts";
import { type RunningProcess, readyString } from "./child-process.ts";
import {
  type CloudServiceContext,
  rolloutEnvironment,
  startGatewayProcess,
  startRolloutProcess,
} from "./cloud-processes.ts";
import { type DemoServices, startDemoServices } from "./demo-services.ts";
import { startHubEmulator, startRelayEmulator } from "./emulator-processes.ts";
import { applySimulationDeployments } from "./fleet-deployments.ts";
import type { GatewayHandle, PartLauncher } from "./fleet-types.ts";
import { type HubInfo, HubRegistry } from "./hub-registry.ts";
import { type IdentityEmulator, startIdentityEmulator } from "./identity-emulator/index.ts";
import { freeServerPort } from "./ports.ts";
import { putRelayRoleAssignment, type RelayInfo } from "./relay-admin-client.ts";
import { RolloutClient } from "./rollout-client.ts";
import type { Supervisor, Watchable } from "./supervisor.ts";

/** The rollout's managed identity (the Functions app's) in the local token issuer. */
const ROLLOUT_IDENTITY = "rollout";
/** Gateway `index`'s managed identity (each instance its own, as each VM's would be). */
const gatewayIdentity = (index: number) => `gateway-${index + 1}`;

function watchable(proc: RunningProcess): Watchable {
  return { exited: proc.exited, intended: () => proc.stopRequested, pid: proc.child.pid };
}

export interface CloudPartsOptions {
  /** Where state and logs go (`<stateDir>/relay`, `iothub`, `azurite`, `identity`). */
  stateDir: string;
  /** Gateway instances, on 127.0.0.1, 127.0.0.2, … */
  gateways: number;
  /** How often gateways re-read the ledger. */
  ledgerReloadMs: number;
  /** Public ports the rollout service allocates from. */
  portRange: { from: number; to: number };
  launcher: PartLauncher;
  supervisor: Supervisor;
  /** The site whose public ports include `port` (the shared demo services answer with its id). */
  siteOfPort(port: number): string | undefined;
  /** IoT Hub throttles the hub emulator enforces (FleetOptions.hubQuotas); absent: none. */
  hubQuotas?: { sku: HubSku; units: number } | undefined;
}

export class CloudParts {
  /** The local Entra ID token issuer: each cloud part's managed identity. */
  identity!: IdentityEmulator;
  relay!: RelayInfo;
  relayProcess!: RunningProcess;
  hub!: HubInfo;
  hubProcess!: RunningProcess;
  /** The hub's registry, read with its owner policy (module keys and twins). */
  registry!: HubRegistry;
  storage!: Azurite;
  rollout!: { url: string; functionKey: string; process: RunningProcess };
  /** The rollout HTTP API's client, with the function key. */
  client!: RolloutClient;
  readonly gateways: GatewayHandle[] = [];
  /** Demo services that the default site profile points at (sites added with the CLI). */
  sharedServices!: DemoServices;
  private readonly dirs: { logs: string; relay: string; hub: string; azurite: string; identity: string };
  private readonly launcher: PartLauncher;
  private stopped = false;
  private hubWebhook: string | undefined;
  private rolloutPort = 0;

  constructor(private readonly options: CloudPartsOptions) {
    const d = options.stateDir;
    this.dirs = {
      logs: join(d, "logs"),
      relay: join(d, "relay"),
      hub: join(d, "iothub"),
      azurite: join(d, "azurite"),
      identity: join(d, "identity"),
    };
    this.launcher = options.launcher;
  }

  private progress(step: string): void {
    this.launcher.progress(step);
  }

  private log(name: string): string {
    return this.launcher.logFile(name);
  }

  /** Watches a started part; a crash starts it again through `restart` (when enabled). */
  private supervise(part: string, proc: RunningProcess, restart: () => Promise<unknown>): void {
    if (this.stopped) return;
    this.options.supervisor.watch(part, watchable(proc), restart);
  }

  /** The part's processes end; no crash after this is restarted. */
  markStopped(): void {
    this.stopped = true;
  }

  /** Starts the token issuer, the emulators, Azurite, the rollout and the fleet's deployments. */
  async startInfrastructure(): Promise<void> {
    this.progress("starting the token issuer (managed identities for the gateways and the rollout)");
    this.identity = await startIdentityEmulator({
      trustFile: this.trustFile,
      identities: [ROLLOUT_IDENTITY],
    });

    // The IoT Hub emulator posts device events to the rollout API, and the rollout API needs the
    // hub: fix the API's port and key first so the hub can start before it.
    this.rolloutPort = await freeServerPort();
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
    this.sharedServices = await startDemoServices("default-profile", "127.0.0.1", (port) =>
      this.options.siteOfPort(port),
    );

    this.progress("starting the rollout service (Functions handlers over HTTP)");
    await this.startRollout();

    this.progress("applying the fleet's IoT Edge deployments (relay-fleet deployment apply)");
    const quotas = this.options.hubQuotas;
    await applySimulationDeployments(
      this.registry,
      (step) => this.progress(step),
      quotas ? { sku: quotas.sku, units: quotas.units } : {},
    );
  }

  /** The issuer's public key, which the relay and IoT Hub emulators trust (`--trust-file`). */
  private get trustFile(): string {
    return join(this.dirs.identity, "trust.json");
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
    this.options.supervisor.watch(
      "azurite",
      { exited: storage.exited, intended: () => storage.closing, pid: storage.pid },
      () => this.startStorage(),
    );
  }

  /** Starts (or restarts, on the same port and with the same function key) the rollout service. */
  async startRollout(): Promise<void> {
    const proc = await startRolloutProcess(this.launcher, this.rolloutEnv(), {
      port: this.rolloutPort,
      functionKey: this.client.functionKey,
      shared: this.sharedServices,
    });
    this.rollout = {
      url: readyString(proc.ready, "url"),
      functionKey: this.client.functionKey,
      process: proc,
    };
    this.supervise("rollout", proc, () => this.startRollout());
  }

  /** Environment of the rollout service: its managed identity and where things are, no key. */
  rolloutEnv(): NodeJS.ProcessEnv {
    const gatewayLogs = Array.from({ length: this.options.gateways }, (_, i) => this.log(`gateway-${i + 1}`));
    return rolloutEnvironment(this.cloudContext(), this.identity.envFor(ROLLOUT_IDENTITY), gatewayLogs);
  }

  private cloudContext(): CloudServiceContext {
    return {
      hub: this.hub,
      relay: this.relay,
      storage: this.storage,
      portRange: this.options.portRange,
      gatewayMetricsFile: this.gatewayMetricsFile,
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
    const started = await startRelayEmulator(
      this.launcher,
      { dir: this.dirs.relay, trustFile: this.trustFile },
      this.relay,
    );
    this.relayProcess = started.process;
    this.relay = started.relay;
    // What infra/main.json assigns the rollout: Azure Relay Owner here, the emulator's stand-in for
    // ARM Contributor. By a fixed name, so a saved state is updated, not added to.
    await putRelayRoleAssignment(this.relay, "sim-rollout-relay-owner", {
      principalId: this.identity.addIdentity(ROLLOUT_IDENTITY).principalId,
      roleDefinitionId: ROLES.relayOwner.id,
    });
    this.supervise("relay-emulator", started.process, () => this.startRelay());
  }

  /** Starts (or restarts, on the same ports with its saved state) the IoT Hub emulator. */
  async startHub(eventGridUrl?: string): Promise<void> {
    const webhook = eventGridUrl ?? this.hubWebhook;
    this.hubWebhook = webhook;
    const started = await startHubEmulator(
      this.launcher,
      {
        dir: this.dirs.hub,
        trustFile: this.trustFile,
        rolloutPrincipalId: this.identity.addIdentity(ROLLOUT_IDENTITY).principalId,
        eventGridWebhook: webhook,
        quotas: this.options.hubQuotas,
      },
      this.hub,
    );
    this.hubProcess = started.process;
    this.hub = started.hub;
    this.registry = new HubRegistry(this.hub);
    this.supervise("iothub-emulator", started.process, () => this.startHub());
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
    const { process: proc, adminPort } = await startGatewayProcess(this.launcher, this.cloudContext(), {
      index,
      host,
      identityEnv: this.identity.envFor(gatewayIdentity(index)),
      ledgerReloadMs: this.options.ledgerReloadMs,
    });
    const handle = { index, host, adminPort, process: proc };
    this.gateways[index] = handle;
    // A restarted gateway has a new admin port: the file always lists the current ones.
    const urls = this.gateways.filter(Boolean).map((g) => `http://127.0.0.1:${g.adminPort}/metrics`);
    writeFileSync(this.gatewayMetricsFile, `${JSON.stringify({ urls })}\n`);
    this.supervise(`gateway-${index + 1}`, proc, () => this.startGateway(index));
    return handle;
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

  /** Stops the cloud parts and the emulators (the fleet stops the gateways' processes first). */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all([
      this.rollout?.process.stop("SIGTERM", 3_000),
      this.hubProcess?.stop("SIGTERM", 3_000),
      this.relayProcess?.stop("SIGTERM", 3_000),
      this.storage?.close(),
      this.identity?.close(),
      this.sharedServices?.close(),
    ]);
  }
}
