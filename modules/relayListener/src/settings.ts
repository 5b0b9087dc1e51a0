/**
 * The module's local settings, from the container environment (the device owner's side; the
 * cloud configures the module only through its twin). Every timer is configurable so tests can
 * run fast; the defaults are what a site runs.
 */
import { readFileSync } from "node:fs";
import { z } from "zod";
import { envInt, parseEnv } from "../../../lib/env.ts";
import { RelayFleetError } from "../../../lib/errors.ts";
import { RETRY_PERIOD_MS } from "../../../lib/hyco/constants.ts";
import { type Allowlist, allowlistFrom, type Lookup } from "./allowlist.ts";

export interface ModuleSettings {
  allowlist: Allowlist;
  /** `RELAY_ALLOWED_TARGETS` was set (by a deployment) and is ignored: logged as a warning. */
  ignoredAllowlistEnv: boolean;
  /** Extra CA (PEM text) for the relay's TLS: the local relay emulator's CA. */
  relayCa: string | undefined;
  /** Prometheus `/metrics` + `/healthz` port; undefined = no HTTP server. 0 = a free port. */
  metricsPort: number | undefined;
  metricsHost: string;
  /** Control channels per module instance on the hybrid connection (redundancy). */
  listenerCount: number;
  /** Reported properties go out at most once per this interval, coalesced. */
  reportIntervalMs: number;
  /** A twin GET that gets no answer is abandoned (and retried) after this long. */
  twinTimeoutMs: number;
  /** Full twin re-read even without a reconnect, as a safety net for a missed patch. */
  twinResyncMs: number;
  /** Longest shutdown drain after SIGTERM. */
  /** At most one audit batch (IoT Hub message) per this interval. */
  auditIntervalMs: number;
  shutdownDrainMs: number;
  /** Wait for the sender's preamble / PROXY header. */
  preambleTimeoutMs: number;
  /** Standby connections held for senders at most, and how long each waits for its preamble. */
  standby: { max: number; idleMs: number };
  /** TCP keepalive initial delay on target sockets. */
  keepAliveMs: number;
  /**
   * Reconnect period of each relay listener: one attempt per period, the channels' slots spread
   * evenly over it (ADR 0013). Production keeps the 6 s default (10 attempts a minute); tests
   * shorten it.
   */
  relayRetryPeriodMs: number;
  /**
   * IoT Hub reconnects spread over the fleet: once per `fleetSize / connectsPerSecond` seconds
   * (at least `minPeriodMs`) on a random phase, so a fleet back from a hub outage stays within
   * the hub's new-connection quota (ADR 0027). The deployment sets the fleet's figures.
   */
  hubReconnect: { fleetSize: number; connectsPerSecond: number; minPeriodMs: number };
}

const int = envInt;

/**
 * Every variable the module reads, validated once at start. Files named here are read by
 * `readSettings`; `RELAY_ALLOWED_TARGETS` is only detected, never used (see below).
 */
export const moduleEnvSchema = z.object({
  RELAY_ALLOWLIST_FILE: z.string().optional(),
  RELAY_ALLOWED_TARGETS: z.string().optional(),
  RELAY_CA_FILE: z.string().optional(),
  METRICS_PORT: int(0, 0, 65535),
  METRICS_HOST: z.string().optional(),
  RELAY_LISTENER_COUNT: int(2, 1, 8),
  REPORT_INTERVAL_MS: int(5_000, 0, 3_600_000),
  TWIN_TIMEOUT_MS: int(15_000, 100, 600_000),
  TWIN_RESYNC_MS: int(900_000, 1_000, 86_400_000),
  SHUTDOWN_DRAIN_MS: int(20_000, 0, 600_000),
  AUDIT_INTERVAL_MS: int(5_000, 100, 3_600_000),
  PREAMBLE_TIMEOUT_MS: int(10_000, 100, 120_000),
  STANDBY_MAX: int(64, 0, 1_000),
  STANDBY_IDLE_MS: int(300_000, 1_000, 3_600_000),
  TARGET_KEEPALIVE_MS: int(30_000, 1_000, 3_600_000),
  RELAY_RETRY_PERIOD_MS: int(RETRY_PERIOD_MS, 10, 600_000),
  // The fleet's size (or an upper bound) and the new connections a second it may open on its
  // hub: 95 of S1's 100 (the rest is headroom for devices that are not relay modules).
  HUB_FLEET_SIZE: int(1, 1, 10_000_000),
  HUB_CONNECTS_PER_SECOND: int(95, 1, 1_000_000),
  HUB_RETRY_MIN_MS: int(5_000, 10, 600_000),
});

function parseModuleEnv(env: NodeJS.ProcessEnv): z.output<typeof moduleEnvSchema> {
  return parseEnv(moduleEnvSchema, env, "RF_ERR_MODULE_SETTING", "");
}

/**
 * Where the device owner's allowlist is: a file in the directory the deployment bind-mounts
 * read-only from the device (`/etc/relay-listener` on the host). Its content is the device's, so
 * a cloud writer of `$edgeAgent` cannot widen it; `RELAY_ALLOWLIST_FILE` moves the path for the
 * simulator and tests (the edge-agent stand-in sets it from the simulated device's own config).
 */
export const DEFAULT_ALLOWLIST_FILE = "/etc/relay-listener/allowlist.txt";

/**
 * The allowlist file's text; undefined when the default file is absent (deny all). A path named
 * explicitly that cannot be read is a start-up error: the owner meant a file to be there.
 */
function readAllowlistFile(env: NodeJS.ProcessEnv): string | undefined {
  const explicit = env.RELAY_ALLOWLIST_FILE;
  const path = explicit || DEFAULT_ALLOWLIST_FILE;
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    if (!explicit && (err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new RelayFleetError("RF_ERR_MODULE_SETTING", `RELAY_ALLOWLIST_FILE ${path} cannot be read`, {
      cause: err,
    });
  }
}

/**
 * Reads and validates the environment; throws `RF_ERR_MODULE_SETTING` / `RF_ERR_ALLOWLIST_ENTRY`.
 * `RELAY_ALLOWED_TARGETS` is deliberately not read: under IoT Edge the deployment manifest (the
 * cloud) sets the environment, so an allowlist there could be widened by the cloud.
 */
export function readSettings(env: NodeJS.ProcessEnv = process.env, lookup?: Lookup): ModuleSettings {
  const fileText = readAllowlistFile(env);
  let relayCa: string | undefined;
  if (env.RELAY_CA_FILE) {
    try {
      relayCa = readFileSync(env.RELAY_CA_FILE, "utf8");
    } catch (err) {
      throw new RelayFleetError(
        "RF_ERR_MODULE_SETTING",
        `RELAY_CA_FILE ${env.RELAY_CA_FILE} cannot be read`,
        { cause: err },
      );
    }
  }
  const v = parseModuleEnv(env);
  return {
    allowlist: allowlistFrom(fileText, lookup),
    ignoredAllowlistEnv: env.RELAY_ALLOWED_TARGETS !== undefined,
    relayCa,
    metricsPort: env.METRICS_PORT === undefined || env.METRICS_PORT === "" ? undefined : v.METRICS_PORT,
    metricsHost: v.METRICS_HOST ?? "0.0.0.0",
    listenerCount: v.RELAY_LISTENER_COUNT,
    reportIntervalMs: v.REPORT_INTERVAL_MS,
    twinTimeoutMs: v.TWIN_TIMEOUT_MS,
    twinResyncMs: v.TWIN_RESYNC_MS,
    shutdownDrainMs: v.SHUTDOWN_DRAIN_MS,
    auditIntervalMs: v.AUDIT_INTERVAL_MS,
    preambleTimeoutMs: v.PREAMBLE_TIMEOUT_MS,
    standby: { max: v.STANDBY_MAX, idleMs: v.STANDBY_IDLE_MS },
    keepAliveMs: v.TARGET_KEEPALIVE_MS,
    relayRetryPeriodMs: v.RELAY_RETRY_PERIOD_MS,
    hubReconnect: {
      fleetSize: v.HUB_FLEET_SIZE,
      connectsPerSecond: v.HUB_CONNECTS_PER_SECOND,
      minPeriodMs: v.HUB_RETRY_MIN_MS,
    },
  };
}
