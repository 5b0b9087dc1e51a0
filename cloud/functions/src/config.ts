/**
 * Builds the rollout service from environment variables (Functions app settings,
 * `local.settings.json`, the simulation, the CLI):
 *
 * | variable | meaning |
 * |---|---|
 * | `IOTHUB_CONNECTION_STRING`, `IOTHUB_REST_PORT`, `IOTHUB_CA_FILE` | IoT Hub service access (`lib/azure/iothub-service.ts`) |
 * | `LEDGER_CONNECTION_STRING` (else `AzureWebJobsStorage`), `LEDGER_TABLE` | port ledger table (default `portledger`) |
 * | `RELAY_PORT_RANGES` | public port ranges, e.g. `40000-40999,50000` (default `40000-40999`) |
 * | `RELAY_SUBSCRIPTION_ID`, `RELAY_RESOURCE_GROUP`, `RELAY_NAMESPACE` | Azure Relay via ARM |
 * | `RELAY_ENDPOINT`, `RELAY_MANAGE_KEY_NAME`, `RELAY_MANAGE_KEY`, `RELAY_TLS`, `RELAY_CA_FILE` | the relay emulator |
 * | `SITE_PROFILES_FILE` or `SITE_PROFILES` (JSON), `DEFAULT_SITE_PROFILE` | site profiles (default mappings) |
 * | `ROTATE_TIMEOUT_MS`, `ROTATE_SEND_GRACE_MS` | key rotation waits |
 */
import { readFileSync } from "node:fs";
import { iothubServiceClientsFromEnv } from "../../../lib/azure/iothub-service.ts";
import { errorMessage, RelayFleetError } from "../../../lib/errors.ts";
import { createLedger, DEFAULT_LEDGER_TABLE, parsePortRanges } from "../../../lib/ledger/index.ts";
import { createLogger } from "../../../lib/log.ts";
import { relayAdminFromEnv } from "./relay-admin/index.ts";
import {
  createRegistryHub,
  createRollout,
  type Rollout,
  type SiteProfiles,
  siteProfilesSchema,
} from "./rollout/index.ts";

function configError(message: string): RelayFleetError {
  return new RelayFleetError("RF_ERR_ROLLOUT_CONFIG", message, { status: 500 });
}

/** Site profiles from `SITE_PROFILES_FILE` / `SITE_PROFILES`; an empty `default` profile otherwise. */
export function profilesFromEnv(env: NodeJS.ProcessEnv = process.env): SiteProfiles {
  let raw: unknown = { default: { mappings: {} } };
  try {
    if (env.SITE_PROFILES_FILE) raw = JSON.parse(readFileSync(env.SITE_PROFILES_FILE, "utf8"));
    else if (env.SITE_PROFILES) raw = JSON.parse(env.SITE_PROFILES);
  } catch (err) {
    throw configError(`Site profiles cannot be read: ${errorMessage(err)}`);
  }
  const parsed = siteProfilesSchema.safeParse(raw);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw configError(`Site profiles are invalid at ${i?.path.join(".") ?? ""}: ${i?.message ?? ""}`);
  }
  return parsed.data;
}

function intEnv(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const v = env[name];
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw configError(`${name} must be a non-negative integer.`);
  return n;
}

/** Creates the rollout service the environment describes. */
export async function rolloutFromEnv(env: NodeJS.ProcessEnv = process.env): Promise<Rollout> {
  const storage = env.LEDGER_CONNECTION_STRING ?? env.AzureWebJobsStorage;
  if (!storage) throw configError("No port ledger is configured: set LEDGER_CONNECTION_STRING.");
  if (!env.IOTHUB_CONNECTION_STRING)
    throw configError("No IoT Hub is configured: set IOTHUB_CONNECTION_STRING.");
  const ranges = parsePortRanges(env.RELAY_PORT_RANGES ?? "40000-40999");
  const ledger = createLedger(storage, env.LEDGER_TABLE ?? DEFAULT_LEDGER_TABLE, { ranges });
  const { registry } = iothubServiceClientsFromEnv(env);
  const relay = await relayAdminFromEnv(env);
  const rotateTimeoutMs = intEnv(env, "ROTATE_TIMEOUT_MS");
  const sendKeyGraceMs = intEnv(env, "ROTATE_SEND_GRACE_MS");
  const rollout = createRollout({
    hub: createRegistryHub(registry),
    relay,
    ledger,
    profiles: profilesFromEnv(env),
    ...(env.DEFAULT_SITE_PROFILE ? { defaultProfile: env.DEFAULT_SITE_PROFILE } : {}),
    ...(rotateTimeoutMs !== undefined ? { rotateTimeoutMs } : {}),
    ...(sendKeyGraceMs !== undefined ? { sendKeyGraceMs } : {}),
    logger: createLogger("rollout"),
  });
  await ledger.ensureTable();
  return rollout;
}

let shared: Promise<Rollout> | undefined;

/** The process-wide rollout (one per Functions worker), built on first use. */
export function getRollout(): Promise<Rollout> {
  shared ??= rolloutFromEnv().catch((err) => {
    shared = undefined;
    throw err;
  });
  return shared;
}

/** Installs a rollout built elsewhere (the in-process simulation server, tests). */
export function setRollout(rollout: Rollout | undefined): void {
  shared = rollout === undefined ? undefined : Promise.resolve(rollout);
}
