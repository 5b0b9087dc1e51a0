/**
 * The rollout service's environment, as one zod schema that is also its documentation: every
 * variable it reads, with a description and where it is set (`deploy`). The infrastructure tests
 * read this schema to check that the ARM template sets every variable a deployment needs, so a new
 * setting without a template entry fails CI.
 *
 * Three entry points: `rolloutSettingsSchema` is what the rollout service needs wherever it runs
 * (the Functions app, the simulation's local server, the CLI's direct mode);
 * `functionsAppSettingsSchema` adds what only the Functions app needs (its timer's schedule), and
 * `localServerSettingsSchema` what only the simulation's local server reads (its port and key).
 * Descriptions follow lib/env.ts's convention (`documented`), as the module's and the gateway's do.
 */
import { z } from "zod";
import {
  type DescribedVariable,
  describeEnv,
  documented,
  envOptionalInt,
  envText,
  logLevelEnv,
  parseEnv,
} from "../../../lib/env.ts";
import { HUB_SKUS, type HubSku } from "../../../lib/iothub-quotas.ts";
import {
  DEFAULT_GATEWAY_STATUS_TABLE,
  DEFAULT_LEDGER_TABLE,
  DEFAULT_PUBLIC_PORT_RANGES,
  type PortRange,
  parsePortRanges,
} from "../../../lib/ledger/index.ts";

/**
 * Where a variable is set:
 * - `app-setting`: a plain app setting of the Functions app (the template sets it);
 * - `secret`: never plain text: a Key Vault reference in Azure, the environment locally;
 * - `local`: only against the local emulators or for development (the template must not set it).
 */
export type SettingDeploy = "app-setting" | "secret" | "local";

/** A variable's documentation here: lib/env.ts's description, and where it is set. */
export interface SettingMeta {
  description: string;
  deploy: SettingDeploy;
}

// Outside Linux's ephemeral range (lib/ledger/port-ranges.ts): the gateways' own outgoing
// connections cannot take a public port before the gateway listens on it.
const DEFAULT_PORT_RANGES = DEFAULT_PUBLIC_PORT_RANGES;

const optionalText = envText;

const optionalInt = envOptionalInt;

/** NCRONTAB with seconds first (`{second} {minute} {hour} {day} {month} {day-of-week}`). */
const NCRONTAB = /^\s*(?:[0-9A-Za-z*/,-]+\s+){5}[0-9A-Za-z*/,-]+\s*$/;

const reconcileSchedule = optionalText().pipe(
  z
    .string({ error: "is required (NCRONTAB, e.g. 0 */5 * * * *)" })
    .regex(NCRONTAB, "must be an NCRONTAB expression with six fields, seconds first (e.g. 0 */5 * * * *)"),
);

const portRanges = z
  .string()
  .optional()
  .transform((v, ctx): PortRange[] => {
    try {
      return parsePortRanges(v === undefined || v === "" ? DEFAULT_PORT_RANGES : v);
    } catch (err) {
      ctx.addIssue({ code: "custom", message: (err as Error).message });
      return z.NEVER;
    }
  });

const relayTls = z
  .enum(["", "0", "1"], { error: "must be 1 (TLS) or 0" })
  .optional()
  .transform((v) => v === "1");

const flag = z
  .enum(["", "0", "1"], { error: "must be 1 or 0" })
  .optional()
  .transform((v) => v === "1");

/**
 * Roles the rollout's managed identity needs (ids in lib/entra/roles.ts); the infrastructure
 * template assigns them.
 */
export const ROLLOUT_ROLES = {
  iotHub: ["IoT Hub Registry Contributor", "IoT Hub Twin Contributor"],
  ledger: "Storage Table Data Contributor",
  relay: "Contributor (ARM, on the relay namespace)",
} as const;

export const rolloutSettingsSchema = z.object({
  IOTHUB_HOST_NAME: documented(optionalText(), {
    description:
      "IoT Hub host name, reached with the managed identity (IoT Hub Registry Contributor + Twin Contributor); wins over IOTHUB_CONNECTION_STRING",
    deploy: "app-setting",
  }),
  IOTHUB_CONNECTION_STRING: documented(optionalText(), {
    description:
      "IoT Hub service connection string, where no managed identity is used (local runs; Azure uses IOTHUB_HOST_NAME)",
    deploy: "local",
  }),
  AZURE_CLIENT_ID: documented(optionalText(), {
    description: "client id of a user-assigned managed identity (unset: the app's system-assigned identity)",
    deploy: "local",
  }),
  ROLLOUT_RELAY_SEND_AUTH: documented(
    z
      .enum(["", "entra", "sas"], { error: "must be entra or sas" })
      .optional()
      .transform((v) => (v === "sas" ? "sas" : "entra")),
    {
      description:
        "entra (default): gateways sign in with their managed identity, sites get no Send rule and the ledger no key; sas: a Send rule per site, its key in the ledger",
      deploy: "app-setting",
    },
  ),
  LEDGER_TABLE_URL: documented(optionalText(), {
    description:
      "table service URL of the port ledger, reached with the managed identity (Storage Table Data Contributor); wins over LEDGER_CONNECTION_STRING",
    deploy: "app-setting",
  }),
  LEDGER_CA_FILE: documented(optionalText(), {
    description: "PEM file of an extra CA for the ledger's TLS (the simulation's Azurite)",
    deploy: "local",
  }),
  IOTHUB_SKU: documented(
    z
      .enum(["", ...HUB_SKUS], { error: `must be one of ${HUB_SKUS.join(", ")}` })
      .optional()
      .transform((v) => (v ? (v as HubSku) : undefined)),
    {
      description:
        "IoT Hub's tier (S1, S3, ...): the rollout paces each quota class at its published rate (hub-pacing.ts); unset: paced by the hub's 429 answers alone",
      deploy: "app-setting",
    },
  ),
  IOTHUB_UNITS: documented(optionalInt(1, 200), {
    description: "IoT Hub units (default 1): the published rates scale with them",
    deploy: "app-setting",
  }),
  IOTHUB_QUOTA_TIME_SCALE: documented(optionalInt(1, 3_600), {
    description:
      "the IoT Hub emulator's quota time scale (benchmarks only): the pacing refills that many times faster, as the emulator does",
    deploy: "local",
  }),
  IOTHUB_REST_PORT: documented(optionalInt(1, 65535), {
    description: "HTTPS port of the hub's REST API when it is not 443 (the IoT Hub emulator)",
    deploy: "local",
  }),
  IOTHUB_CA_FILE: documented(optionalText(), {
    description: "PEM file of an extra CA to trust for IoT Hub (the emulator's)",
    deploy: "local",
  }),
  LEDGER_CONNECTION_STRING: documented(optionalText(), {
    description:
      "storage connection string of the port ledger's table, else AzureWebJobsStorage (local runs; Azure uses LEDGER_TABLE_URL)",
    deploy: "local",
  }),
  AzureWebJobsStorage: documented(optionalText(), {
    description:
      "the Functions host's storage connection string; the ledger's when LEDGER_CONNECTION_STRING is unset",
    deploy: "local",
  }),
  LEDGER_TABLE: documented(
    optionalText().transform((v) => v ?? DEFAULT_LEDGER_TABLE),
    {
      description: `name of the port ledger's table (default ${DEFAULT_LEDGER_TABLE})`,
      deploy: "app-setting",
    },
  ),
  GATEWAY_STATUS_TABLE: documented(
    optionalText().transform((v) => v ?? DEFAULT_GATEWAY_STATUS_TABLE),
    {
      description: `table the gateways report their status to (ports they cannot bind), read by status (default ${DEFAULT_GATEWAY_STATUS_TABLE})`,
      deploy: "app-setting",
    },
  ),
  RELAY_PORT_RANGES: documented(portRanges, {
    description: `public port ranges the rollout allocates from, e.g. 21000-21999,23000 (default ${DEFAULT_PORT_RANGES}); keep them out of the gateways' ephemeral range (32768-60999) or reserve them there`,
    deploy: "app-setting",
  }),
  RELAY_SUBSCRIPTION_ID: documented(optionalText(), {
    description: "Azure Relay via ARM: the namespace's subscription",
    deploy: "app-setting",
  }),
  RELAY_RESOURCE_GROUP: documented(optionalText(), {
    description: "Azure Relay via ARM: the namespace's resource group",
    deploy: "app-setting",
  }),
  RELAY_NAMESPACE: documented(optionalText(), {
    description: "Azure Relay via ARM: the namespace's name",
    deploy: "app-setting",
  }),
  RELAY_NAMESPACES: documented(optionalText(), {
    description:
      "comma-separated relay namespaces new sites are spread over, filled in this order: via ARM their names (default: RELAY_NAMESPACE alone; the template lists its relayNamespaceCount namespaces); with the relay emulator their URLs, all with RELAY_MANAGE_KEY (default: RELAY_ENDPOINT alone)",
    deploy: "app-setting",
  }),
  RELAY_NAMESPACE_CONNECTIONS: documented(optionalInt(1, 1_000_000), {
    description: "concurrent connections each relay namespace allows (Azure Relay's quota; default 5000)",
    deploy: "app-setting",
  }),
  RELAY_NAMESPACE_MAX_FILL_PERCENT: documented(optionalInt(1, 100), {
    description: "the most of a namespace's connections the rollout places sites in (default 80: headroom)",
    deploy: "app-setting",
  }),
  RELAY_SITE_LISTENER_CHANNELS: documented(optionalInt(1, 8), {
    description:
      "relay listener channels per device counted for a site (the module's RELAY_LISTENER_COUNT; default 2)",
    deploy: "app-setting",
  }),
  RELAY_SITE_STANDBY_CONNECTIONS: documented(optionalInt(0, 1_000), {
    description:
      "standby connections counted per site (default 16, one gateway's pool ceiling GATEWAY_STANDBY_MAX; raise it for several gateways with bursty sites)",
    deploy: "app-setting",
  }),
  RELAY_ENDPOINT: documented(optionalText(), {
    description: "the relay emulator's endpoint (sb://127.0.0.1:<port>)",
    deploy: "local",
  }),
  RELAY_ENDPOINTS: documented(optionalText(), {
    description:
      "relay emulators as several namespaces: comma-separated endpoints sharing RELAY_MANAGE_KEY_NAME and RELAY_MANAGE_KEY, filled in this order like RELAY_NAMESPACES (default: RELAY_ENDPOINT alone)",
    deploy: "local",
  }),
  RELAY_MANAGE_KEY_NAME: documented(optionalText(), {
    description: "the relay emulator's Manage rule name",
    deploy: "local",
  }),
  RELAY_MANAGE_KEY: documented(optionalText(), {
    description: "the relay emulator's Manage key",
    deploy: "local",
  }),
  RELAY_TLS: documented(relayTls, {
    description: "1: the relay emulator speaks TLS (implied by RELAY_CA_FILE)",
    deploy: "local",
  }),
  RELAY_CA_FILE: documented(optionalText(), {
    description: "PEM file of the relay emulator's TLS CA",
    deploy: "local",
  }),
  SITE_PROFILES_FILE: documented(optionalText(), {
    description: "JSON file of site profiles (default mappings); wins over SITE_PROFILES",
    deploy: "local",
  }),
  SITE_PROFILES: documented(optionalText(), {
    description: "site profiles as JSON text (default: one empty profile named default)",
    deploy: "app-setting",
  }),
  DEFAULT_SITE_PROFILE: documented(optionalText(), {
    description: "profile given to a site onboarded without one (default: default)",
    deploy: "app-setting",
  }),
  ROTATE_TIMEOUT_MS: documented(optionalInt(0), {
    description: "how long key rotation waits for a module to report its new key",
    deploy: "app-setting",
  }),
  ROTATE_SEND_GRACE_MS: documented(optionalInt(0), {
    description: "how long the old Send key stays valid after a rotation",
    deploy: "app-setting",
  }),
  GATEWAY_METRICS_URLS: documented(optionalText(), {
    description:
      "status page: comma-separated gateway /metrics URLs for live traffic (set by hand where the app can reach the gateways' admin ports)",
    deploy: "local",
  }),
  GATEWAY_METRICS_FILE: documented(optionalText(), {
    description:
      'status page: a JSON file {"urls":[...]} of gateway /metrics URLs, re-read each time (the simulation)',
    deploy: "local",
  }),
  GATEWAY_ADMIN_TOKEN: documented(optionalText(), {
    description: "status page: Bearer token for the gateways' /metrics, when they require one",
    deploy: "local",
  }),
  AUDIT_FROM_IOTHUB_EMULATOR: documented(flag, {
    description:
      "1: audit (relay-fleet audit, the status page's site view) reads the modules' records from the IoT Hub emulator's kept messages, with the managed identity (IOTHUB_HOST_NAME) or IOTHUB_CONNECTION_STRING (emulator-only; in Azure they are routed to storage, docs/audit.md)",
    deploy: "local",
  }),
  AUDIT_GATEWAY_LOG_FILES: documented(optionalText(), {
    description:
      "audit: comma-separated gateway log files (JSON lines) to read the gateways' records from (the simulation)",
    deploy: "local",
  }),
  STATUS_PAGE_CACHE_MS: documented(optionalInt(0), {
    description: "status page: how long one computed fleet view serves every open page (default 1500)",
    deploy: "local",
  }),
  IDENTITY_ENDPOINT: documented(optionalText(), {
    description:
      "managed identity endpoint the platform sets (App Service, the simulation's identity emulator); with RELAY_ENDPOINT: the relay emulator reached with the identity instead of a Manage key",
    deploy: "local",
  }),
  LOG_LEVEL: documented(logLevelEnv, {
    description:
      "log level of the rollout's own logger (the local server, the CLI's direct mode; default info)",
    deploy: "local",
  }),
});

export const functionsAppSettingsSchema = rolloutSettingsSchema.extend({
  RECONCILE_SCHEDULE: documented(reconcileSchedule, {
    description: "NCRONTAB schedule of the reconcile timer, seconds first (e.g. 0 */5 * * * *)",
    deploy: "app-setting",
  }),
});

/** The simulation's local server (serve-local.ts): the rollout's settings and where it listens. */
export const localServerSettingsSchema = functionsAppSettingsSchema.extend({
  ROLLOUT_PORT: documented(optionalInt(0, 65535), {
    description: "the local server's port (default 0: any free port, printed on its listening line)",
    deploy: "local",
  }),
  ROLLOUT_FUNCTION_KEY: documented(optionalText(), {
    description:
      "the function key the local server requires (default: a random one, printed on its listening line)",
    deploy: "local",
  }),
});

export type RolloutSettings = z.output<typeof rolloutSettingsSchema>;
export type FunctionsAppSettings = z.output<typeof functionsAppSettingsSchema>;
export type LocalServerSettings = z.output<typeof localServerSettingsSchema>;

/** Name and documentation of every variable a settings schema reads (lib/env.ts), with where it is set. */
export function describeSettings(
  schema: z.ZodObject = functionsAppSettingsSchema,
): Array<DescribedVariable<SettingMeta>> {
  return describeEnv<SettingMeta>(schema).map((v) => {
    if (!v.deploy) throw new Error(`setting ${v.name} does not say where it is set (deploy)`);
    return v;
  });
}

function parseWith<S extends z.ZodObject>(schema: S, env: NodeJS.ProcessEnv): z.output<S> {
  return parseEnv(schema, env, "RF_ERR_ROLLOUT_CONFIG", "rollout configuration: ");
}

/** Reads and validates the rollout's environment; throws `RF_ERR_ROLLOUT_CONFIG` naming each bad variable. */
export function loadRolloutSettings(env: NodeJS.ProcessEnv = process.env): RolloutSettings {
  return parseWith(rolloutSettingsSchema, env);
}

/** Same for the Functions app (and its local stand-in): also requires `RECONCILE_SCHEDULE`. */
export function loadFunctionsAppSettings(env: NodeJS.ProcessEnv = process.env): FunctionsAppSettings {
  return parseWith(functionsAppSettingsSchema, env);
}

/** Same for the simulation's local server: the Functions app's settings and its own port and key. */
export function loadLocalServerSettings(env: NodeJS.ProcessEnv = process.env): LocalServerSettings {
  return parseWith(localServerSettingsSchema, env);
}
