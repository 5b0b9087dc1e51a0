/**
 * The module's local settings, from the container environment (the device owner's side; the
 * cloud configures the module only through its twin). Every timer is configurable so tests can
 * run fast; the defaults are what a site runs.
 */
import { readFileSync } from "node:fs";
import { z } from "zod";
import { documented, envInt, envOptionalInt, envText, logLevelEnv, parseEnv } from "../../../lib/env.ts";
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
  /** At most one audit batch (IoT Hub message) per this interval. */
  auditIntervalMs: number;
  /** Longest shutdown drain after SIGTERM. */
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
  /** The device's id (IOTEDGE_DEVICEID, or the simulator's connection string), for audit records. */
  deviceId: string | undefined;
  /** `MODULE_VERSION` set by the image build; undefined: the package version (version.ts). */
  version: string | undefined;
}

const int = envInt;
const text = envText;

/**
 * Every variable the module reads, validated once at start, each with its description. Files
 * named here are read by `readSettings`; `RELAY_ALLOWED_TARGETS` is only detected, never used
 * (see below). The IoT Hub device SDK reads its own variables (the edge runtime's IOTEDGE_*,
 * the simulator's EdgeHubConnectionString) in `ModuleClient.fromEnvironment`; listed here are the
 * two the module itself reads to name its device in audit records.
 */
export const moduleEnvSchema = z.object({
  RELAY_ALLOWLIST_FILE: documented(text(), {
    description:
      "the device owner's allowlist file (default /etc/relay-listener/allowlist.txt; absent: deny all)",
  }),
  RELAY_ALLOWED_TARGETS: documented(z.string().optional(), {
    description: "ignored on purpose (the deployment, i.e. the cloud, sets it); logged as a warning when set",
  }),
  RELAY_CA_FILE: documented(text(), {
    description: "extra CA (PEM file) for the relay's TLS: the local relay emulator's",
  }),
  METRICS_PORT: documented(envOptionalInt(0, 65535), {
    description: "port of /metrics and /healthz (unset: no HTTP server; 0: a free port)",
  }),
  METRICS_HOST: documented(text(), { description: "address of the metrics port (default 0.0.0.0)" }),
  RELAY_LISTENER_COUNT: documented(int(2, 1, 8), {
    description: "control channels per module instance on the hybrid connection (default 2, redundancy)",
  }),
  REPORT_INTERVAL_MS: documented(int(5_000, 0, 3_600_000), {
    description: "reported properties go out at most once per this interval, coalesced (default 5000)",
  }),
  TWIN_TIMEOUT_MS: documented(int(15_000, 100, 600_000), {
    description: "a twin GET without an answer is abandoned and retried after this long (default 15000)",
  }),
  TWIN_RESYNC_MS: documented(int(900_000, 1_000, 86_400_000), {
    description:
      "full twin re-read even without a reconnect, a safety net for a missed patch (default 900000)",
  }),
  SHUTDOWN_DRAIN_MS: documented(int(20_000, 0, 600_000), {
    description: "longest shutdown drain after SIGTERM (default 20000)",
  }),
  AUDIT_INTERVAL_MS: documented(int(5_000, 100, 3_600_000), {
    description: "at most one audit batch (IoT Hub message) per this interval (default 5000)",
  }),
  PREAMBLE_TIMEOUT_MS: documented(int(10_000, 100, 120_000), {
    description: "how long a sender has for its logical-port preamble and PROXY header (default 10000)",
  }),
  STANDBY_MAX: documented(int(64, 0, 1_000), {
    description: "standby connections held for senders at most (default 64)",
  }),
  STANDBY_IDLE_MS: documented(int(300_000, 1_000, 3_600_000), {
    description: "how long a standby connection waits for its preamble (default 300000)",
  }),
  TARGET_KEEPALIVE_MS: documented(int(30_000, 1_000, 3_600_000), {
    description: "TCP keepalive initial delay on target sockets (default 30000)",
  }),
  RELAY_RETRY_PERIOD_MS: documented(int(RETRY_PERIOD_MS, 10, 600_000), {
    description: `reconnect period of each relay listener, one attempt per period (default ${RETRY_PERIOD_MS}, ADR 0013)`,
  }),
  // The fleet's size (or an upper bound) and the new connections a second it may open on its
  // hub: 95 of S1's 100 (the rest is headroom for devices that are not relay modules).
  HUB_FLEET_SIZE: documented(int(1, 1, 10_000_000), {
    description:
      "modules in the fleet (or an upper bound), for the IoT Hub reconnect period (default 1, ADR 0027)",
  }),
  HUB_CONNECTS_PER_SECOND: documented(int(95, 1, 1_000_000), {
    description: "new IoT Hub connections a second the fleet may open (default 95 of S1's 100)",
  }),
  HUB_RETRY_MIN_MS: documented(int(5_000, 10, 600_000), {
    description: "shortest IoT Hub reconnect period, whatever the fleet's figures (default 5000)",
  }),
  IOTEDGE_DEVICEID: documented(text(), {
    description: "the device's id, set by the IoT Edge runtime (audit records name the device with it)",
  }),
  EdgeHubConnectionString: documented(text(), {
    description:
      "the simulator's module connection string; its DeviceId names the device where IOTEDGE_DEVICEID is unset",
  }),
  MODULE_VERSION: documented(text(), {
    description: "the module's version, set by the image build (default: the package version)",
  }),
  LOG_LEVEL: logLevelEnv,
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
function readAllowlistFile(explicit: string | undefined): string | undefined {
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
  const v = parseModuleEnv(env);
  const fileText = readAllowlistFile(v.RELAY_ALLOWLIST_FILE);
  let relayCa: string | undefined;
  if (v.RELAY_CA_FILE) {
    try {
      relayCa = readFileSync(v.RELAY_CA_FILE, "utf8");
    } catch (err) {
      throw new RelayFleetError("RF_ERR_MODULE_SETTING", `RELAY_CA_FILE ${v.RELAY_CA_FILE} cannot be read`, {
        cause: err,
      });
    }
  }
  return {
    allowlist: allowlistFrom(fileText, lookup),
    ignoredAllowlistEnv: v.RELAY_ALLOWED_TARGETS !== undefined,
    relayCa,
    metricsPort: v.METRICS_PORT,
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
    deviceId: v.IOTEDGE_DEVICEID ?? /DeviceId=([^;]+)/.exec(v.EdgeHubConnectionString ?? "")?.[1],
    version: v.MODULE_VERSION,
  };
}
