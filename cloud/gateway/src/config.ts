/**
 * Gateway configuration from environment variables (documented in cloud/gateway/README.md),
 * validated once at start: a typo fails fast with the variable's name.
 */
import { z } from "zod";
import { RelayFleetError } from "../../../lib/errors.ts";

const int = (fallback: number, min = 0) =>
  z
    .string()
    .optional()
    .transform((v) => (v === undefined || v === "" ? fallback : Number(v)))
    .pipe(z.number().int().min(min));

/** Every variable the gateway reads; the infrastructure tests derive the required ones from it. */
export const gatewayEnvSchema = z.object({
  LEDGER_CONNECTION_STRING: z.string({ error: "is required" }).min(1, "is required"),
  LEDGER_TABLE: z
    .string()
    .optional()
    .transform((v) => v || "portledger"),
  LEDGER_RELOAD_INTERVAL_MS: int(30_000),
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
  GATEWAY_ADMIN_TOKEN: z.string().optional(),
  GATEWAY_FIRST_BYTES_TIMEOUT_MS: int(10_000, 1),
  GATEWAY_CONNECT_TIMEOUT_MS: int(15_000, 1),
  GATEWAY_DRAIN_TIMEOUT_MS: int(30_000),
  GATEWAY_STANDBY_CONNECTIONS: int(2),
  GATEWAY_STANDBY_WARM_MS: int(300_000, 1),
  GATEWAY_BREAKER_THRESHOLD: int(5, 1),
  GATEWAY_BREAKER_MAX_BACKOFF_MS: int(30_000, 1),
});

export type GatewayConfig = z.output<typeof gatewayEnvSchema>;

/** Reads and validates the environment; throws `RF_ERR_GATEWAY_CONFIG` naming each bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const parsed = gatewayEnvSchema.safeParse(env);
  if (!parsed.success) {
    const detail = parsed.error.issues.map((i) => `${i.path.join(".")} ${i.message}`).join("; ");
    throw new RelayFleetError("RF_ERR_GATEWAY_CONFIG", `gateway configuration: ${detail}`);
  }
  return parsed.data;
}
