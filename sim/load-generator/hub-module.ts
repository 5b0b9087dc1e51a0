/**
 * One simulated module on IoT Hub, cheap enough to hold thousands in one process: the device
 * SDK's `ModuleClient` over MQTT wired exactly as relayListener wires it for the hub — the
 * fleet-sized reconnect slots for the SDK's retries and the module's re-opens (hub-retry.ts),
 * `HubConnection` and `TwinSync` — without the relay side. The load generator and the reconnect
 * test use it to see what a fleet does to the hub's new-connection quota.
 */
import { createRequire } from "node:module";
import deviceSdk, { type ModuleClient } from "azure-iot-device";
import type { Logger } from "../../lib/log.ts";
import { HubReconnectSchema } from "../../lib/twin/schema.ts";
import type { ModuleHubClient } from "../../modules/relayListener/src/hub-client.ts";
import { HubConnection } from "../../modules/relayListener/src/hub-connection.ts";
import {
  HubConnectGate,
  type HubReconnectSettings,
  HubReconnectSlots,
} from "../../modules/relayListener/src/hub-retry.ts";
import { gatedMqtt } from "../../modules/relayListener/src/hub-transport.ts";
import { TwinSync } from "../../modules/relayListener/src/twin-sync.ts";

const { ModuleClient: ModuleClientCtor } = deviceSdk;

/**
 * The device SDK builds its user-agent platform string (azure-iot-common's
 * `getAgentPlatformString`, which reads the OS release with `getos`) again for every client it
 * opens: 2.3 s a call on this machine, and thousands at once never finish within the open's
 * deadline. A module process opens one client; a process simulating thousands computes the string
 * once and reuses it (the same machine for all of them). Nothing on the wire changes.
 */
function platformStringOnce(): void {
  const sdkRequire = createRequire(createRequire(import.meta.url).resolve("azure-iot-device"));
  const common = sdkRequire("azure-iot-common") as {
    getAgentPlatformString: (done: (platform: string) => void) => void;
  };
  const original = common.getAgentPlatformString;
  let platform: Promise<string> | undefined;
  common.getAgentPlatformString = (done) => {
    platform ??= new Promise((resolve) => original(resolve));
    void platform.then(done);
  };
}
platformStringOnce();

type Connector = (...args: unknown[]) => unknown;

export interface SimulatedHubModuleOptions {
  connectionString: string;
  ca: string;
  reconnect: HubReconnectSettings;
  logger: Logger;
  /** Deadline of SDK calls (the module's TWIN_TIMEOUT_MS). */
  deadlineMs?: number;
  /**
   * Diagnostics (the scale benchmark): called for every MQTT connection the SDK starts, with the
   * code path that asked for it (see `connectPath`).
   */
  onConnectAttempt?: (path: ConnectPath, at: number) => (outcome: string) => void;
}

/** Which loop made a connection attempt. */
export type ConnectPath =
  | "module-open"
  | "sdk-after-drop"
  | "sdk-retry"
  | "slot-gate"
  | "twin-call"
  | "other";

/**
 * Classifies a connection attempt by the stack that made it: the module's own open
 * (`HubConnection`), the SDK's immediate attempt inside its disconnect handler, a retry the SDK's
 * `RetryOperation` timer made, an attempt the connect gate held to its slot (hub-transport.ts), or
 * an SDK call that connects on demand (getTwin, reported update).
 */
export function connectPath(stack: string): ConnectPath {
  if (stack.includes("_disconnectHandler")) return "sdk-after-drop";
  if (stack.includes("openWith") || stack.includes("HubConnection")) return "module-open";
  if (stack.includes("retryOperation") && stack.includes("listOnTimeout")) return "sdk-retry";
  if (stack.includes("GatedMqttBase") || stack.includes("Timeout._onTimeout")) return "slot-gate";
  if (stack.includes("getTwin") || stack.includes("Twin")) return "twin-call";
  return "other";
}

export class SimulatedHubModule {
  private stopping = false;
  private readonly client: ModuleClient;
  private readonly port: ModuleHubClient;
  private readonly hub: HubConnection;
  private readonly twinSync: TwinSync;
  readonly slots: HubReconnectSlots;
  /** Desired versions seen (a cheap sign the twin path works). */
  desiredVersion: number | null = null;

  constructor(private readonly opts: SimulatedHubModuleOptions) {
    const slots = new HubReconnectSlots(opts.reconnect);
    // As main.ts: every attempt after a loss waits for the module's slot.
    const gate = new HubConnectGate(slots);
    this.client = ModuleClientCtor.fromConnectionString(opts.connectionString, gatedMqtt(gate));
    this.port = this.client as unknown as ModuleHubClient;
    this.slots = slots;
    const deadlineMs = opts.deadlineMs ?? 15_000;
    this.hub = new HubConnection(this.port, {
      slots,
      deadlineMs,
      logger: opts.logger,
      isStopping: () => this.stopping,
      onReopened: () => this.twinSync.refresh(),
    });
    gate.onDropped = () => this.hub.transportLost();
    this.twinSync = new TwinSync(
      this.port,
      (desired, version) => {
        this.desiredVersion = version;
        // As the module's reconciler: the rollout's phase (ADR 0031) when the twin holds a valid one.
        const part = HubReconnectSchema.safeParse(desired.hubReconnect);
        slots.usePhase(part.success ? part.data.phase : undefined);
      },
      {
        twinTimeoutMs: deadlineMs,
        twinResyncMs: 86_400_000,
        logger: opts.logger,
        onNoAnswer: (why) => void this.hub.reopen(why),
      },
    );
    const observe = opts.onConnectAttempt;
    const mqtt = (this.client as unknown as { _transport?: { _mqtt?: { _connectClient?: Connector } } })
      ._transport?._mqtt;
    const connect = mqtt?._connectClient;
    if (observe && mqtt && connect) {
      mqtt._connectClient = function (this: unknown, ...args: unknown[]) {
        const limit = Error.stackTraceLimit;
        Error.stackTraceLimit = 40;
        const stack = new Error().stack ?? "";
        Error.stackTraceLimit = limit;
        const done = observe(connectPath(stack), Date.now());
        const callback = args[0] as (err?: Error, ...rest: unknown[]) => void;
        return connect.call(this, (err?: Error, ...rest: unknown[]) => {
          done(err ? err.message.slice(0, 40) : "ok");
          callback(err, ...rest);
        });
      };
    }
    this.port.on("error", () => {});
    this.port.on("disconnect", (reason) => {
      if (!this.stopping)
        void this.hub.reconnect(reason === undefined ? "disconnected" : "transport disconnected");
    });
  }

  /** Opens the connection (retrying on the module's slots) and reads the twin. */
  async start(): Promise<void> {
    await this.client.setOptions({ ca: this.opts.ca });
    await this.hub.open();
    if (this.stopping) return;
    // As module.ts: the SDK's reconnects wait for the module's slot once it is open.
    this.port.setRetryPolicy?.(this.slots);
    await this.twinSync.start();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.twinSync.stop();
    await this.hub.closeQuietly();
  }
}
