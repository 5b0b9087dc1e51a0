/**
 * Gateway configuration from environment variables, one documented zod schema (lib/env.ts; the
 * long form in cloud/gateway/README.md), validated once at start: a typo fails fast with the
 * variable's name.
 */
import { hostname } from "node:os";
import { z } from "zod";
import { documented, envInt, envText, logLevelEnv, parseEnv } from "../../../lib/env.ts";
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

/** Text with a default when unset or empty. */
const text = (fallback: () => string) =>
  z
    .string()
    .optional()
    .transform((v) => v || fallback());

/**
 * Every variable the gateway reads, each with its description (cloud/gateway/README.md has the
 * long form); the infrastructure tests derive the gateways' environment from it.
 */
export const gatewayEnvSchema = z.object({
  LEDGER_CONNECTION_STRING: documented(optional, {
    description:
      "ledger by account key or SAS connection string (Azurite, or where Entra ID is not used); or LEDGER_TABLE_URL",
  }),
  LEDGER_TABLE_URL: documented(optional, {
    description:
      "ledger by managed identity (Storage Table Data Reader): the table service URL, https://<account>.table.core.windows.net",
  }),
  LEDGER_CA_FILE: documented(optional, {
    description: "extra CA (PEM file) for the ledger's TLS, e.g. the simulation's Azurite",
  }),
  GATEWAY_RELAY_AUTH: documented(
    z
      .string()
      .optional()
      .transform((v) => v || "entra")
      .pipe(z.enum(["entra", "sas"])),
    {
      description:
        "entra (default): the managed identity's token, role Azure Relay Sender; sas: the site's Send rule from the ledger",
    },
  ),
  AZURE_CLIENT_ID: documented(optional, {
    description: "client id of a user-assigned managed identity (unset: the system-assigned one)",
  }),
  LEDGER_TABLE: documented(
    text(() => "portledger"),
    {
      description: "the ledger's table name (default portledger)",
    },
  ),
  LEDGER_RELOAD_INTERVAL_MS: documented(int(30_000), {
    description: "re-read the ledger this often (default 30000; 0 = only on demand: POST /reload, SIGHUP)",
  }),
  LEDGER_FULL_READ_INTERVAL_MS: documented(int(DEFAULT_FULL_READ_INTERVAL_MS), {
    description: `full ledger re-read period; between them only changed rows are read (default ${DEFAULT_FULL_READ_INTERVAL_MS}, ADR 0015)`,
  }),
  GATEWAY_STATUS_TABLE: documented(
    text(() => DEFAULT_GATEWAY_STATUS_TABLE),
    {
      description: `table where this instance reports what it cannot do (public ports it cannot bind) for status (default ${DEFAULT_GATEWAY_STATUS_TABLE})`,
    },
  ),
  GATEWAY_INSTANCE_ID: documented(
    z
      .string()
      .max(256)
      .regex(/^[A-Za-z0-9._:-]*$/, "must be letters, digits and . _ : - (a table row key)")
      .optional()
      .transform((v) => v || hostname()),
    { description: "this instance's row key in the status table (default: the host name)" },
  ),
  GATEWAY_RELOAD_MIN_INTERVAL_MS: documented(int(250), {
    description: "reloads are coalesced: the ledger is read at most once per this period (default 250)",
  }),
  RELAY_CA_FILE: documented(optional, {
    description: "extra CA (PEM file) for the relay's TLS, e.g. the local emulator's",
  }),
  GATEWAY_BIND_HOST: documented(
    text(() => "0.0.0.0"),
    { description: "address the public ports bind to (default 0.0.0.0)" },
  ),
  GATEWAY_HEALTH_PORT: documented(int(8080), {
    description: "admin port: /healthz, /readyz, /metrics, POST /reload (default 8080; 0 = a free one)",
  }),
  GATEWAY_HEALTH_HOST: documented(
    text(() => "0.0.0.0"),
    {
      description:
        "address of the admin port (default 0.0.0.0); without a token /metrics and /reload answer on loopback only",
    },
  ),
  GATEWAY_ADMIN_TOKEN: documented(
    z
      .string()
      .optional()
      .refine((v) => v === undefined || v === "" || v.length >= 16, "must be at least 16 characters"),
    { description: "bearer token /metrics and /reload require on any address (at least 16 characters)" },
  ),
  GATEWAY_FIRST_BYTES_TIMEOUT_MS: documented(int(10_000, 1), {
    description:
      "on a shared port, a client without a complete ClientHello / request head by then is closed (default 10000)",
  }),
  GATEWAY_CONNECT_TIMEOUT_MS: documented(int(15_000, 1), {
    description: "relay connect and the site's answer must finish within this (default 15000)",
  }),
  GATEWAY_DRAIN_TIMEOUT_MS: documented(int(30_000), {
    description: "on SIGTERM: how long live tunnels may finish before they are closed (default 30000)",
  }),
  GATEWAY_STANDBY_CONNECTIONS: documented(int(2), {
    description: "fewest standby relayed connections kept per site in use (default 2; 0 = off)",
  }),
  GATEWAY_STANDBY_MAX: documented(int(16), {
    description: "most standby connections per site, the pool following recent demand (default 16, ADR 0016)",
  }),
  GATEWAY_STANDBY_WARM_MS: documented(int(300_000, 1), {
    description: "a site's standbys are kept this long after its last tunnel (default 300000)",
  }),
  GATEWAY_MAX_CONNECTIONS_PER_SOURCE: documented(
    int(ROUTE_LIMIT_DEFAULTS.maxConnectionsPerSource, 0, ROUTE_LIMIT_MAX.maxConnectionsPerSource),
    {
      description: `live connections one client address may hold on a route whose row sets none (default ${ROUTE_LIMIT_DEFAULTS.maxConnectionsPerSource}; 0 = no cap)`,
    },
  ),
  GATEWAY_SILENT_TIMEOUT_MS: documented(
    int(ROUTE_LIMIT_DEFAULTS.silentTimeoutMs, 0, ROUTE_LIMIT_MAX.silentTimeoutMs),
    {
      description: `a client silent this long after connecting is closed, unless its route sets its own (default ${ROUTE_LIMIT_DEFAULTS.silentTimeoutMs}; 0 = never)`,
    },
  ),
  GATEWAY_IDLE_TIMEOUT_MS: documented(
    int(ROUTE_LIMIT_DEFAULTS.idleTimeoutMs, 0, ROUTE_LIMIT_MAX.idleTimeoutMs),
    {
      description: `no byte either way this long closes a tunnel, unless its route sets its own (default ${ROUTE_LIMIT_DEFAULTS.idleTimeoutMs}; 0 = never)`,
    },
  ),
  GATEWAY_BREAKER_THRESHOLD: documented(int(5, 1), {
    description: "consecutive relay failures for one site that open its circuit (default 5)",
  }),
  // 1 s: an open circuit only spares the relay the attempts of clients knocking at a dead site
  // (one a second instead of each), so it must never outlast the site's return by more than that.
  GATEWAY_BREAKER_MAX_BACKOFF_MS: documented(int(1_000, 1), {
    description: "longest a site's circuit stays open before the next client probes it (default 1000)",
  }),
  LOG_LEVEL: logLevelEnv,
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
