/**
 * Starting the two Azure emulators as processes of the simulation: the relay emulator (Azure
 * Relay over wss) and the IoT Hub emulator (MQTT + REST over TLS). Each keeps its state, CA and
 * keys in its own directory, so a restart looks like an outage to clients: the same entities,
 * keys and CA come back on the same ports. Supervision (restart after a crash) is the caller's.
 */
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROLES } from "../lib/entra/roles.ts";
import { type RunningProcess, readyNumber, readyString } from "./child-process.ts";
import type { PartLauncher } from "./fleet-types.ts";
import type { HubInfo } from "./hub-registry.ts";
import { isPortFree } from "./ports.ts";
import type { RelayInfo } from "./relay-admin-client.ts";

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

export interface EmulatorStart {
  /** The part's own state directory. */
  dir: string;
  /** The token issuer's public key, which the emulator trusts (`--trust-file`). */
  trustFile: string;
}

/**
 * Starts the relay emulator (again, after a crash: `previous` keeps its port). A first start in a
 * saved state dir takes the port of the last run when it is free.
 */
export async function startRelayEmulator(
  launcher: PartLauncher,
  { dir, trustFile }: EmulatorStart,
  previous: RelayInfo | undefined,
): Promise<{ relay: RelayInfo; process: RunningProcess }> {
  const args = ["--tls", "--dir", dir, "--state-file", join(dir, "state.json"), "--trust-file", trustFile];
  // A key in the environment, never on the command line (`ps` shows arguments to everyone).
  const manageKey = ownedKey(join(dir, "manage.key"));
  const env: NodeJS.ProcessEnv = { RELAY_EMULATOR_MANAGE_KEY: manageKey };
  // The relay's endpoint is written into ledger rows and module twins: a persistent state dir
  // must find the relay on the same port next run, or every saved site would point nowhere.
  const portFile = join(dir, "port.json");
  if (previous) args.push("--port", String(new URL(previous.url).port));
  else if (existsSync(portFile)) {
    const saved = (JSON.parse(readFileSync(portFile, "utf8")) as { port?: unknown }).port;
    if (typeof saved === "number" && (await isPortFree(saved))) args.push("--port", String(saved));
    else
      launcher.progress(
        `the relay's previous port ${String(saved)} is taken: saved sites need re-onboarding`,
      );
  }
  const proc = await launcher.spawn({
    name: "relay-emulator",
    script: "sim/relay-emulator/main.ts",
    args,
    env,
    logFile: launcher.logFile("relay-emulator"),
  });
  const relay: RelayInfo = {
    url: readyString(proc.ready, "url"),
    endpoint: readyString(proc.ready, "endpoint"),
    caFile: readyString(proc.ready, "caFile"),
    manageKeyName: readyString(proc.ready, "manageKeyName"),
    manageKey,
  };
  writeFileSync(portFile, `${JSON.stringify({ port: Number(new URL(relay.url).port) })}\n`);
  return { relay, process: proc };
}

export interface HubStart extends EmulatorStart {
  /** The rollout's principal, given IoT Hub's data roles as infra/main.json assigns them. */
  rolloutPrincipalId: string;
  /** Where device lifecycle events go (the rollout's Event Grid webhook, function key inside). */
  eventGridWebhook: string | undefined;
  /** IoT Hub throttles to enforce (`--sku`, `--units`); absent: none. */
  quotas?: { sku: string; units: number } | undefined;
}

/** Starts the IoT Hub emulator (again, after a crash: `previous` keeps its ports). */
export async function startHubEmulator(
  launcher: PartLauncher,
  { dir, trustFile, rolloutPrincipalId, eventGridWebhook, quotas }: HubStart,
  previous: HubInfo | undefined,
): Promise<{ hub: HubInfo; process: RunningProcess }> {
  // Given at every start: the emulator keeps role assignments in memory only.
  const args = [
    "--dir",
    dir,
    "--state-file",
    join(dir, "state.json"),
    "--trust-file",
    trustFile,
    "--role",
    `${rolloutPrincipalId}=${ROLES.iotHubRegistryContributor.id}`,
    "--role",
    `${rolloutPrincipalId}=${ROLES.iotHubTwinContributor.id}`,
  ];
  if (quotas) args.push("--sku", quotas.sku, "--units", String(quotas.units));
  if (previous)
    args.push("--mqtt-port", String(previous.mqttPort), "--https-port", String(previous.httpsPort));
  const ownerKey = ownedKey(join(dir, "owner.key"));
  const proc = await launcher.spawn({
    name: "iothub-emulator",
    script: "sim/iothub-emulator/main.ts",
    args,
    // The webhook URL carries the function key: environment, not arguments.
    env: {
      IOTHUB_EMULATOR_OWNER_KEY: ownerKey,
      ...(eventGridWebhook ? { IOTHUB_EMULATOR_EVENT_GRID_WEBHOOK: eventGridWebhook } : {}),
    },
    logFile: launcher.logFile("iothub-emulator"),
  });
  const hostName = readyString(proc.ready, "hostName");
  const hub: HubInfo = {
    hostName,
    mqttPort: readyNumber(proc.ready, "mqttPort"),
    httpsPort: readyNumber(proc.ready, "httpsPort"),
    caFile: readyString(proc.ready, "caFile"),
    serviceConnectionString: `HostName=${hostName};SharedAccessKeyName=iothubowner;SharedAccessKey=${ownerKey}`,
  };
  return { hub, process: proc };
}
