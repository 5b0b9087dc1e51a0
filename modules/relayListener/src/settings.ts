/**
 * The module's local settings, from the container environment (the device owner's side; the
 * cloud configures the module only through its twin). Every timer is configurable so tests can
 * run fast; the defaults are what a site runs.
 */
import { readFileSync } from "node:fs";
import { RelayFleetError } from "../../../lib/errors.ts";
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
  shutdownDrainMs: number;
  /** Wait for the sender's preamble / PROXY header. */
  preambleTimeoutMs: number;
  /** Standby connections held for senders at most, and how long each waits for its preamble. */
  standby: { max: number; idleMs: number };
  /** TCP keepalive initial delay on target sockets. */
  keepAliveMs: number;
  /** Backoff of the relay listeners (tests shorten it). */
  relayBackoff: { initialMs: number; maxMs: number } | undefined;
}

function intEnv(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new RelayFleetError("RF_ERR_MODULE_SETTING", `${name}=${raw} must be an integer ${min}-${max}`);
  }
  return n;
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
        {
          cause: err,
        },
      );
    }
  }
  const backoffInitial = env.RELAY_BACKOFF_INITIAL_MS;
  return {
    allowlist: allowlistFrom(fileText, lookup),
    ignoredAllowlistEnv: env.RELAY_ALLOWED_TARGETS !== undefined,
    relayCa,
    metricsPort:
      env.METRICS_PORT === undefined || env.METRICS_PORT === ""
        ? undefined
        : intEnv(env, "METRICS_PORT", 0, 0, 65535),
    metricsHost: env.METRICS_HOST ?? "0.0.0.0",
    listenerCount: intEnv(env, "RELAY_LISTENER_COUNT", 2, 1, 8),
    reportIntervalMs: intEnv(env, "REPORT_INTERVAL_MS", 5_000, 0, 3_600_000),
    twinTimeoutMs: intEnv(env, "TWIN_TIMEOUT_MS", 15_000, 100, 600_000),
    twinResyncMs: intEnv(env, "TWIN_RESYNC_MS", 900_000, 1_000, 86_400_000),
    shutdownDrainMs: intEnv(env, "SHUTDOWN_DRAIN_MS", 20_000, 0, 600_000),
    preambleTimeoutMs: intEnv(env, "PREAMBLE_TIMEOUT_MS", 10_000, 100, 120_000),
    standby: {
      max: intEnv(env, "STANDBY_MAX", 16, 0, 1_000),
      idleMs: intEnv(env, "STANDBY_IDLE_MS", 300_000, 1_000, 3_600_000),
    },
    keepAliveMs: intEnv(env, "TARGET_KEEPALIVE_MS", 30_000, 1_000, 3_600_000),
    relayBackoff:
      backoffInitial === undefined
        ? undefined
        : {
            initialMs: intEnv(env, "RELAY_BACKOFF_INITIAL_MS", 2_500, 10, 60_000),
            maxMs: intEnv(env, "RELAY_BACKOFF_MAX_MS", 9_000, 10, 600_000),
          },
  };
}
