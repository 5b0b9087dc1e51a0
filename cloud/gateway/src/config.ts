/**
 * Gateway configuration from environment variables (documented in cloud/gateway/README.md),
 * validated once at start: a typo fails fast with the variable's name.
 */
import { hostname } from "node:os";
import { z } from "zod";
import { envInt, envText, parseEnv } from "../../../lib/env.ts";
import { DEFAULT_FULL_READ_INTERVAL_MS } from "../../../lib/ledger/follow-ledger.ts";
import { DEFAULT_GATEWAY_STATUS_TABLE } from "../../../lib/ledger/gateway-status.ts";
import { ROUTE_LIMIT_DEFAULTS, ROUTE_LIMIT_MAX } from "../../../lib/ledger/route-limits.ts";

const int = envInt;

/** Scope of the gateway's Entra ID token for Azure Relay (resource `https://relay.azure.net`). */
export const RELAY_TOKEN_SCOPE = "https://relay.azure.net/.default";

/**
 * Role names the gateway's identity needs (lib/entra/roles.ts has their ids): the
 * infrastructure template assigns them, these names only document and derive app settings.
 */
export const GATEWAY_ROLES = {
  relay: "Azure Relay Sender",
  ledger: "Storage Table Data Reader",
} as const;

const optional = envText();

/** Every variable the gateway reads; the infrastructure tests derive app settings from it. */
export const gatewayEnvSchema = z.object({
  /** Ledger by account key or SAS connection string (Azurite, or where Entra ID is not used). */
  LEDGER_CONNECTION_STRING: optional,
  /** Ledger by managed identity: the table service URL (`https://<account>.table.core.windows.net`). */
  LEDGER_TABLE_URL: optional,
  /** Extra CA (PEM file) for the ledger's TLS, e.g. the simulation's Azurite. */
  LEDGER_CA_FILE: optional,
  /** `entra` (default): the managed identity's token, Azure Relay Sender role; `sas`: the ledger's Send rules. */
  GATEWAY_RELAY_AUTH: z
    .string()
    .optional()
    .transform((v) => v || "entra")
    .pipe(z.enum(["entra", "sas"])),
  /** Client id of a user-assigned managed identity; unset = the system-assigned one. */
  AZURE_CLIENT_ID: optional,
  LEDGER_TABLE: z
    .string()
    .optional()
    .transform((v) => v || "portledger"),
  LEDGER_RELOAD_INTERVAL_MS: int(30_000),
  /** Full ledger re-read period; between them only changed rows are read (follow-ledger.ts). */
  LEDGER_FULL_READ_INTERVAL_MS: int(DEFAULT_FULL_READ_INTERVAL_MS),
  /** Where this gateway reports what it cannot do (public ports it cannot bind) for `status`. */
  GATEWAY_STATUS_TABLE: z
    .string()
    .optional()
    .transform((v) => v || DEFAULT_GATEWAY_STATUS_TABLE),
  /** Row key of this instance in the status table (default: the host name). */
  GATEWAY_INSTANCE_ID: z
    .string()
    .max(256)
    .regex(/^[A-Za-z0-9._:-]*$/, "must be letters, digits and . _ : - (a table row key)")
    .optional()
    .transform((v) => v || hostname()),
  GATEWAY_RELOAD_MIN_INTERVAL_MS: int(250),
  RELAY_CA_FILE: z.string().optional(),
  GATEWAY_BIND_HOST: z
    .string()
    .optional()
    .transform((v) => v || "0.0.0.0"),
  GATEWAY_HEALTH_PORT: int(8080),
  GATEWAY_HEALTH_HOST: z
    .string()
    .optional()
    .transform((v) => v || "0.0.0.0"),
  GATEWAY_ADMIN_TOKEN: z
    .string()
    .optional()
    .refine((v) => v === undefined || v === "" || v.length >= 16, "must be at least 16 characters"),
  GATEWAY_FIRST_BYTES_TIMEOUT_MS: int(10_000, 1),
  GATEWAY_CONNECT_TIMEOUT_MS: int(15_000, 1),
  GATEWAY_DRAIN_TIMEOUT_MS: int(30_000),
  GATEWAY_STANDBY_CONNECTIONS: int(2),
  GATEWAY_STANDBY_MAX: int(16),
  GATEWAY_STANDBY_WARM_MS: int(300_000, 1),
  /** Fallbacks for routes whose ledger row sets no limit of its own (0 = off). */
  GATEWAY_MAX_CONNECTIONS_PER_SOURCE: int(
    ROUTE_LIMIT_DEFAULTS.maxConnectionsPerSource,
    0,
    ROUTE_LIMIT_MAX.maxConnectionsPerSource,
  ),
  GATEWAY_SILENT_TIMEOUT_MS: int(ROUTE_LIMIT_DEFAULTS.silentTimeoutMs, 0, ROUTE_LIMIT_MAX.silentTimeoutMs),
  GATEWAY_IDLE_TIMEOUT_MS: int(ROUTE_LIMIT_DEFAULTS.idleTimeoutMs, 0, ROUTE_LIMIT_MAX.idleTimeoutMs),
  GATEWAY_BREAKER_THRESHOLD: int(5, 1),
  // 1 s: an open circuit only spares the relay the attempts of clients knocking at a dead site
  // (one a second instead of each), so it must never outlast the site's return by more than that.
  GATEWAY_BREAKER_MAX_BACKOFF_MS: int(1_000, 1),
});

const refined = gatewayEnvSchema.superRefine((c, ctx) => {
  if (!c.LEDGER_CONNECTION_STRING && !c.LEDGER_TABLE_URL)
    ctx.addIssue({
      code: "custom",
      path: ["LEDGER_TABLE_URL"],
      message: "or LEDGER_CONNECTION_STRING is required",
    });
});

export type GatewayConfig = z.output<typeof gatewayEnvSchema>;

/** Reads and validates the environment; throws `RF_ERR_GATEWAY_CONFIG` naming each bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  return parseEnv(refined, env, "RF_ERR_GATEWAY_CONFIG", "gateway configuration: ");
}
