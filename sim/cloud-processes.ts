/**
 * Starting the simulation's cloud services as processes: the rollout service (the Functions
 * handlers behind a local HTTP server) and the gateways. Both hold no key, as in Azure (ADR 0010):
 * each gets its managed identity from the local token issuer and finds IoT Hub, the ledger and
 * the relay by address. Supervision (restart after a crash) is the caller's.
 */
import { type RunningProcess, readyNumber } from "./child-process.ts";
import type { DemoServices } from "./demo-services.ts";
import type { PartLauncher } from "./fleet-types.ts";
import type { HubInfo } from "./hub-registry.ts";
import type { RelayInfo } from "./relay-admin-client.ts";

/** Where the cloud services find what they use (read at each start: parts restart). */
export interface CloudServiceContext {
  hub: HubInfo;
  relay: RelayInfo;
  storage: { tableEndpoint: string; caFile?: string | undefined };
  /** Public ports the rollout allocates from. */
  portRange: { from: number; to: number };
  /** `{"urls":[…]}` of the gateways' /metrics, for the rollout service's status page. */
  gatewayMetricsFile: string;
}

/**
 * Environment of the rollout service: its managed identity and where things are, no key (IoT
 * Hub by IOTHUB_HOST_NAME, the ledger by LEDGER_TABLE_URL, the relay through its admin API with
 * the identity; ROLLOUT_RELAY_SEND_AUTH defaults to entra, so no Send rule is made).
 */
export function rolloutEnvironment(
  ctx: CloudServiceContext,
  identityEnv: NodeJS.ProcessEnv,
  gatewayLogFiles: string[],
): NodeJS.ProcessEnv {
  return {
    ...identityEnv,
    IOTHUB_HOST_NAME: ctx.hub.hostName,
    IOTHUB_REST_PORT: String(ctx.hub.httpsPort),
    IOTHUB_CA_FILE: ctx.hub.caFile,
    LEDGER_TABLE_URL: ctx.storage.tableEndpoint,
    LEDGER_CA_FILE: ctx.storage.caFile,
    RELAY_ENDPOINT: ctx.relay.endpoint,
    RELAY_CA_FILE: ctx.relay.caFile,
    RELAY_TLS: "1",
    RELAY_PORT_RANGES: `${ctx.portRange.from}-${ctx.portRange.to}`,
    // The status page reads the gateways' metrics; the fleet writes where they are.
    GATEWAY_METRICS_FILE: ctx.gatewayMetricsFile,
    // `relay-fleet audit` and the site page: the modules' records kept by the IoT Hub emulator,
    // the gateways' from their log files (in Azure: storage and Log Analytics, docs/audit.md).
    AUDIT_FROM_IOTHUB_EMULATOR: "1",
    AUDIT_GATEWAY_LOG_FILES: gatewayLogFiles.join(","),
  };
}

/** Starts the rollout service on `port` with `functionKey`, its default profile on `shared`. */
export function startRolloutProcess(
  launcher: PartLauncher,
  env: NodeJS.ProcessEnv,
  { port, functionKey, shared }: { port: number; functionKey: string; shared: DemoServices },
): Promise<RunningProcess> {
  const profiles = {
    default: {
      mappings: {
        web: { target: `127.0.0.1:${shared.webPort}` },
        echo: { target: `127.0.0.1:${shared.echoPort}` },
      },
    },
  };
  return launcher.spawn({
    name: "rollout",
    script: "cloud/functions/src/serve-local.ts",
    logFile: launcher.logFile("rollout"),
    env: {
      ...env,
      ROLLOUT_PORT: String(port),
      ROLLOUT_FUNCTION_KEY: functionKey,
      // The Functions app's own setting; the local server checks it as the host would.
      RECONCILE_SCHEDULE: "0 */5 * * * *",
      SITE_PROFILES: JSON.stringify(profiles),
    },
  });
}

/**
 * Starts gateway `index` on `host` with its managed identity, no key: Azure Relay Sender
 * (GATEWAY_RELAY_AUTH defaults to entra), the ledger and its status table by LEDGER_TABLE_URL.
 * Azurite checks no roles (ADR 0010). Resolves with the process and its admin port.
 */
export async function startGatewayProcess(
  launcher: PartLauncher,
  ctx: CloudServiceContext,
  { index, host, identityEnv, ledgerReloadMs }: GatewayStart,
): Promise<{ process: RunningProcess; adminPort: number }> {
  const name = `gateway-${index + 1}`;
  const proc = await launcher.spawn({
    name,
    script: "cloud/gateway/src/main.ts",
    logFile: launcher.logFile(name),
    isReady: (line) => line.event === "started",
    env: {
      ...identityEnv,
      LEDGER_TABLE_URL: ctx.storage.tableEndpoint,
      LEDGER_CA_FILE: ctx.storage.caFile,
      RELAY_CA_FILE: ctx.relay.caFile,
      GATEWAY_BIND_HOST: host,
      GATEWAY_INSTANCE_ID: name,
      GATEWAY_HEALTH_HOST: "127.0.0.1",
      GATEWAY_HEALTH_PORT: "0",
      LEDGER_RELOAD_INTERVAL_MS: String(ledgerReloadMs),
    },
  });
  const admin = proc.earlyLines.find((l) => l.event === "admin-listening");
  return { process: proc, adminPort: admin ? readyNumber(admin, "port") : 0 };
}

export interface GatewayStart {
  index: number;
  host: string;
  /** The gateway's managed identity (each instance its own, as each VM's would be). */
  identityEnv: NodeJS.ProcessEnv;
  /** How often it re-reads the ledger (it is also told to reload after each change). */
  ledgerReloadMs: number;
}
