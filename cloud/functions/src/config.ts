/**
 * Builds the rollout service from environment variables (Functions app settings,
 * `local.settings.json`, the simulation, the CLI). Every variable is listed, described and
 * validated in `settings.ts`.
 */
import { readFileSync } from "node:fs";
import { ManagedIdentityCredential } from "@azure/identity";
import {
  createIotHubServiceClients,
  createIotHubServiceClientsWithCredential,
} from "../../../lib/azure/iothub-service.ts";
import { errorMessage, RelayFleetError } from "../../../lib/errors.ts";
import { burstOf, hubRates } from "../../../lib/iothub-quotas.ts";
import {
  createLedger,
  createLedgerOnClient,
  createTableClient,
  readGatewayStatuses,
} from "../../../lib/ledger/index.ts";
import { createTableClientWithCredential } from "../../../lib/ledger/table.ts";
import { createLogger } from "../../../lib/log.ts";
import { type AuditSource, gatewayLogSource, hubEmulatorSource } from "./audit/sources.ts";
import { relayAdminsFromEnv } from "./relay-admin/index.ts";
import {
  createRegistryHub,
  createRollout,
  DEFAULT_NAMESPACE_CONNECTIONS,
  type Rollout,
  type SiteProfiles,
  siteProfilesSchema,
  withHubPacing,
} from "./rollout/index.ts";
import { loadRolloutSettings, type RolloutSettings } from "./settings.ts";

/** Scope of an Entra ID token for IoT Hub's service API. */
const IOTHUB_TOKEN_SCOPE = "https://iothubs.azure.net/.default";

function configError(message: string): RelayFleetError {
  return new RelayFleetError("RF_ERR_ROLLOUT_CONFIG", message);
}

/** Site profiles from `SITE_PROFILES_FILE` / `SITE_PROFILES`; an empty `default` profile otherwise. */
export function profilesFromEnv(env: NodeJS.ProcessEnv = process.env): SiteProfiles {
  return profilesFrom(loadRolloutSettings(env));
}

function profilesFrom(settings: Pick<RolloutSettings, "SITE_PROFILES_FILE" | "SITE_PROFILES">): SiteProfiles {
  let raw: unknown = { default: { mappings: {} } };
  try {
    if (settings.SITE_PROFILES_FILE) raw = JSON.parse(readFileSync(settings.SITE_PROFILES_FILE, "utf8"));
    else if (settings.SITE_PROFILES) raw = JSON.parse(settings.SITE_PROFILES);
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

/** Creates the rollout service the environment describes. */
export async function rolloutFromEnv(env: NodeJS.ProcessEnv = process.env): Promise<Rollout> {
  const settings = loadRolloutSettings(env);
  const storage = settings.LEDGER_CONNECTION_STRING ?? settings.AzureWebJobsStorage;
  if (!settings.LEDGER_TABLE_URL && !storage)
    throw configError(
      "No port ledger is configured: set LEDGER_TABLE_URL (managed identity) or LEDGER_CONNECTION_STRING.",
    );
  if (!settings.IOTHUB_HOST_NAME && !settings.IOTHUB_CONNECTION_STRING)
    throw configError(
      "No IoT Hub is configured: set IOTHUB_HOST_NAME (managed identity) or IOTHUB_CONNECTION_STRING.",
    );
  // The app's managed identity: IoT Hub and the ledger with Entra ID tokens, no key in settings.
  const credential = new ManagedIdentityCredential(
    settings.AZURE_CLIENT_ID ? { clientId: settings.AZURE_CLIENT_ID } : undefined,
  );
  const ranges = { ranges: settings.RELAY_PORT_RANGES };
  const ledger = settings.LEDGER_TABLE_URL
    ? createLedgerOnClient(
        createTableClientWithCredential(settings.LEDGER_TABLE_URL, settings.LEDGER_TABLE, credential, {
          ...(settings.LEDGER_CA_FILE ? { ca: readFileSync(settings.LEDGER_CA_FILE) } : {}),
        }),
        ranges,
      )
    : createLedger(storage ?? "", settings.LEDGER_TABLE, ranges);
  // The gateways' own reports (bind failures), beside the ledger and reached the same way.
  const gatewayStatusTable = settings.LEDGER_TABLE_URL
    ? createTableClientWithCredential(settings.LEDGER_TABLE_URL, settings.GATEWAY_STATUS_TABLE, credential, {
        ...(settings.LEDGER_CA_FILE ? { ca: readFileSync(settings.LEDGER_CA_FILE) } : {}),
      })
    : createTableClient(storage ?? "", settings.GATEWAY_STATUS_TABLE);
  const hubOptions = {
    ...(settings.IOTHUB_REST_PORT !== undefined ? { restPort: settings.IOTHUB_REST_PORT } : {}),
    ...(settings.IOTHUB_CA_FILE ? { ca: readFileSync(settings.IOTHUB_CA_FILE) } : {}),
  };
  const { registry } = settings.IOTHUB_HOST_NAME
    ? createIotHubServiceClientsWithCredential(settings.IOTHUB_HOST_NAME, credential, hubOptions)
    : createIotHubServiceClients(settings.IOTHUB_CONNECTION_STRING ?? "", hubOptions);
  const relays = await relayAdminsFromEnv(env);
  const relay = relays[0];
  if (!relay) throw configError("No relay namespace is configured.");
  const logger = createLogger("rollout");
  // The hub's published rates when its tier is known: the pacing spends them and no more.
  const rates = settings.IOTHUB_SKU ? hubRates(settings.IOTHUB_SKU, settings.IOTHUB_UNITS ?? 1) : undefined;
  const rollout = createRollout({
    // Paced per quota class, 429 answers as feedback: the rollout stays within the hub's throttles.
    hub: withHubPacing(createRegistryHub(registry), {
      ...(rates ? { rates, timeScale: settings.IOTHUB_QUOTA_TIME_SCALE ?? 1 } : {}),
      onThrottled: (operation, delayMs) =>
        logger.warn({ event: "iothub-throttled", operation, delayMs }, "IoT Hub throttled; retrying"),
    }),
    relay,
    relayNamespaces: relays.map((admin) => ({
      admin,
      connections: settings.RELAY_NAMESPACE_CONNECTIONS ?? DEFAULT_NAMESPACE_CONNECTIONS,
    })),
    namespacePolicy: {
      ...(settings.RELAY_NAMESPACE_MAX_FILL_PERCENT !== undefined
        ? { maxFill: settings.RELAY_NAMESPACE_MAX_FILL_PERCENT / 100 }
        : {}),
      ...(settings.RELAY_SITE_LISTENER_CHANNELS !== undefined
        ? { listenerChannels: settings.RELAY_SITE_LISTENER_CHANNELS }
        : {}),
      ...(settings.RELAY_SITE_STANDBY_CONNECTIONS !== undefined
        ? { standbyConnections: settings.RELAY_SITE_STANDBY_CONNECTIONS }
        : {}),
    },
    // A bulk call of a tenth of the registry's burst (S1: 10 of its 100 a minute; S3: 100, the
    // most a bulk call takes). The class serves its callers in order, so the sites' module
    // creates wait behind a bulk call until its devices have refilled: a short hold keeps them
    // moving (ADR 0024).
    ...(rates
      ? { onboarding: { batchSize: Math.max(1, Math.floor(burstOf("registry", rates.registry) / 10)) } }
      : {}),
    ledger,
    gatewayStatuses: () => readGatewayStatuses(gatewayStatusTable),
    profiles: profilesFrom(settings),
    relaySendAuth: settings.ROLLOUT_RELAY_SEND_AUTH,
    ...(settings.DEFAULT_SITE_PROFILE ? { defaultProfile: settings.DEFAULT_SITE_PROFILE } : {}),
    ...(settings.ROTATE_TIMEOUT_MS !== undefined ? { rotateTimeoutMs: settings.ROTATE_TIMEOUT_MS } : {}),
    ...(settings.ROTATE_SEND_GRACE_MS !== undefined ? { sendKeyGraceMs: settings.ROTATE_SEND_GRACE_MS } : {}),
    logger,
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

/**
 * The audit sources the environment names (none in Azure: there the records are in the storage
 * container the hub routes to and in the gateways' container logs, docs/audit.md).
 */
export function auditSourcesFromEnv(env: NodeJS.ProcessEnv = process.env): AuditSource[] {
  const settings = loadRolloutSettings(env);
  const sources: AuditSource[] = [];
  if (settings.AUDIT_FROM_IOTHUB_EMULATOR) {
    const where = {
      restPort: settings.IOTHUB_REST_PORT,
      ca: settings.IOTHUB_CA_FILE ? readFileSync(settings.IOTHUB_CA_FILE) : undefined,
    };
    if (settings.IOTHUB_HOST_NAME) {
      // The app's managed identity, as for the rest of IoT Hub (the simulation's default).
      const credential = new ManagedIdentityCredential(
        settings.AZURE_CLIENT_ID ? { clientId: settings.AZURE_CLIENT_ID } : undefined,
      );
      sources.push(
        hubEmulatorSource({
          hostName: settings.IOTHUB_HOST_NAME,
          bearerToken: async () => (await credential.getToken(IOTHUB_TOKEN_SCOPE)).token,
          ...where,
        }),
      );
    } else if (settings.IOTHUB_CONNECTION_STRING)
      sources.push(hubEmulatorSource({ connectionString: settings.IOTHUB_CONNECTION_STRING, ...where }));
    else
      throw configError(
        "AUDIT_FROM_IOTHUB_EMULATOR needs IOTHUB_HOST_NAME (managed identity) or IOTHUB_CONNECTION_STRING (the emulator's).",
      );
  }
  const files = (settings.AUDIT_GATEWAY_LOG_FILES ?? "")
    .split(",")
    .map((f) => f.trim())
    .filter(Boolean);
  if (files.length > 0) sources.push(gatewayLogSource(files));
  return sources;
}

let sharedAudit: AuditSource[] | undefined;

/** The process-wide audit sources, built on first use. */
export function getAuditSources(): AuditSource[] {
  sharedAudit ??= auditSourcesFromEnv();
  return sharedAudit;
}

/** Installs audit sources built elsewhere (tests, the in-process server). */
export function setAuditSources(sources: AuditSource[] | undefined): void {
  sharedAudit = sources;
}
