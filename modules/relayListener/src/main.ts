/**
 * relayListener entry point: the IoT Edge module. `ModuleClient.fromEnvironment` (MQTT, gated on the reconnect slots) works
 * unchanged under the edge runtime (IOTEDGE_* variables) and under the simulator convention
 * (`EdgeHubConnectionString` + `EdgeModuleCACertificateFile`). SIGTERM/SIGINT: stop accepting,
 * drain (bounded), report offline, exit 0.
 */
import deviceSdk from "azure-iot-device";
import { errorMessage } from "../../../lib/errors.ts";
import { createLogger } from "../../../lib/log.ts";
import type { ModuleHubClient } from "./hub-client.ts";
import { HubConnectGate, HubReconnectSlots } from "./hub-retry.ts";
import { gatedMqtt } from "./hub-transport.ts";
import { type RunningModule, startModule } from "./module.ts";
import { readSettings } from "./settings.ts";

// CommonJS packages: Node's ESM loader cannot see their named exports, so take the namespace.
const { ModuleClient } = deviceSdk;

const logger = createLogger("relayListener");

async function main(): Promise<void> {
  const settings = readSettings();
  // Every connection attempt after a loss waits for the module's slot (ADR 0027).
  const hubSlots = new HubReconnectSlots(settings.hubReconnect);
  const hubGate = new HubConnectGate(hubSlots);
  const transport = gatedMqtt(hubGate);
  const client = (await ModuleClient.fromEnvironment(transport)) as unknown as ModuleHubClient;
  let running: RunningModule | undefined;
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "signal received");
    const hardStop = setTimeout(() => process.exit(0), settings.shutdownDrainMs + 15_000);
    hardStop.unref();
    void (running?.shutdown() ?? Promise.resolve()).finally(() => process.exit(0));
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  running = await startModule({ client, settings, logger, hubSlots, hubGate });
  if (stopping) await running.shutdown();
}

process.on("unhandledRejection", (err) => {
  // Never crash on a stray rejection from an SDK callback; log it (redacted) and keep serving.
  logger.error({ err: errorMessage(err) }, "unhandled rejection");
});

main().catch((err) => {
  logger.fatal({ err: errorMessage(err) }, "relayListener failed to start");
  process.exit(1);
});
