/**
 * One simulated module on IoT Hub, cheap enough to hold thousands in one process: the device
 * SDK's `ModuleClient` over MQTT wired exactly as relayListener wires it for the hub — the
 * fleet-sized reconnect slots for the SDK's retries and the module's re-opens (hub-retry.ts),
 * `HubConnection` and `TwinSync` — without the relay side. The load generator and the reconnect
 * test use it to see what a fleet does to the hub's new-connection quota.
 */
import { createRequire } from "node:module";
import deviceSdk, { type ModuleClient } from "azure-iot-device";
import mqttTransport from "azure-iot-device-mqtt";
import type { Logger } from "../../lib/log.ts";
import type { ModuleHubClient } from "../../modules/relayListener/src/hub-client.ts";
import { HubConnection } from "../../modules/relayListener/src/hub-connection.ts";
import { type HubReconnectSettings, HubReconnectSlots } from "../../modules/relayListener/src/hub-retry.ts";
import { TwinSync } from "../../modules/relayListener/src/twin-sync.ts";

const { ModuleClient: ModuleClientCtor } = deviceSdk;
const { Mqtt } = mqttTransport;

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

export interface SimulatedHubModuleOptions {
  connectionString: string;
  ca: string;
  reconnect: HubReconnectSettings;
  logger: Logger;
  /** Deadline of SDK calls (the module's TWIN_TIMEOUT_MS). */
  deadlineMs?: number;
}

export class SimulatedHubModule {
  private stopping = false;
  private readonly client: ModuleClient;
  private readonly port: ModuleHubClient;
  private readonly hub: HubConnection;
  private readonly twinSync: TwinSync;
  private readonly slots: HubReconnectSlots;
  /** Desired versions seen (a cheap sign the twin path works). */
  desiredVersion: number | null = null;

  constructor(private readonly opts: SimulatedHubModuleOptions) {
    this.client = ModuleClientCtor.fromConnectionString(opts.connectionString, Mqtt);
    this.port = this.client as unknown as ModuleHubClient;
    const slots = new HubReconnectSlots(opts.reconnect);
    this.slots = slots;
    const deadlineMs = opts.deadlineMs ?? 15_000;
    this.hub = new HubConnection(this.port, {
      slots,
      deadlineMs,
      logger: opts.logger,
      isStopping: () => this.stopping,
      onReopened: () => this.twinSync.refresh(),
    });
    this.twinSync = new TwinSync(
      this.port,
      (_desired, version) => {
        this.desiredVersion = version;
      },
      {
        twinTimeoutMs: deadlineMs,
        twinResyncMs: 86_400_000,
        logger: opts.logger,
        onNoAnswer: (why) => void this.hub.reopen(why),
      },
    );
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
