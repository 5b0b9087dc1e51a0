/**
 * Gateway process entry point (plain Node or the container): configuration from the
 * environment, ledger reader, public listeners, admin port, SIGHUP reload, SIGTERM drain.
 */
import { readFileSync } from "node:fs";
import { errorMessage } from "../../../lib/errors.ts";
import { StandbyPools } from "../../../lib/hyco/standby.ts";
import { readLedger } from "../../../lib/ledger/read-routes.ts";
import { createTableClient } from "../../../lib/ledger/table.ts";
import { createLogger } from "../../../lib/log.ts";
import { createAdminServer } from "./admin-server.ts";
import { loadConfig } from "./config.ts";
import { Gateway } from "./gateway.ts";
import { createMetrics } from "./metrics.ts";
import { relayPump, relayTunnelOpener } from "./relay-tunnel.ts";

const log = createLogger("gateway");

async function main(): Promise<void> {
  const config = loadConfig();
  const table = createTableClient(config.LEDGER_CONNECTION_STRING, config.LEDGER_TABLE);
  const metrics = createMetrics();
  const ca = config.RELAY_CA_FILE ? readFileSync(config.RELAY_CA_FILE) : undefined;
  const standby =
    config.GATEWAY_STANDBY_CONNECTIONS > 0
      ? new StandbyPools({
          size: config.GATEWAY_STANDBY_CONNECTIONS,
          warmForMs: config.GATEWAY_STANDBY_WARM_MS,
          onTake: (hit) => metrics.standbyTakes.inc({ result: hit ? "hit" : "miss" }),
        })
      : undefined;
  if (standby) metrics.setStandbySource(() => standby.ready);
  const gateway = new Gateway({
    loadLedger: () => readLedger(table),
    openTunnel: relayTunnelOpener({ ca, timeoutMs: config.GATEWAY_CONNECT_TIMEOUT_MS, standby }),
    pump: relayPump,
    metrics,
    log,
    bindHost: config.GATEWAY_BIND_HOST,
    reloadIntervalMs: config.LEDGER_RELOAD_INTERVAL_MS,
    firstBytesTimeoutMs: config.GATEWAY_FIRST_BYTES_TIMEOUT_MS,
    breaker: {
      threshold: config.GATEWAY_BREAKER_THRESHOLD,
      maxBackoffMs: config.GATEWAY_BREAKER_MAX_BACKOFF_MS,
    },
  });
  const admin = createAdminServer({ gateway, metrics, log, token: config.GATEWAY_ADMIN_TOKEN });
  await new Promise<void>((resolve, reject) => {
    admin.once("error", reject);
    admin.listen(config.GATEWAY_HEALTH_PORT, config.GATEWAY_HEALTH_HOST, resolve);
  });
  const adminPort = (admin.address() as { port: number }).port;
  log.info({ event: "admin-listening", port: adminPort }, "admin port open");
  // A failed first load is not fatal: /readyz stays 503 and the periodic reload retries.
  const first = await gateway.start();
  log.info({ event: "started", ok: first.ok, routes: first.routes, ports: first.ports }, "gateway started");

  process.on("SIGHUP", () => void gateway.reload());
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ event: "draining", signal, live: gateway.liveTunnels }, "draining");
    standby?.close();
    const aborted = await gateway.drain(config.GATEWAY_DRAIN_TIMEOUT_MS);
    admin.close();
    admin.closeAllConnections();
    log.info({ event: "stopped", aborted }, "gateway stopped");
    // Let pino flush its last lines before exiting.
    setTimeout(() => process.exit(0), 50);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
}

main().catch((err) => {
  log.fatal({ err: errorMessage(err) }, "gateway failed to start");
  setTimeout(() => process.exit(1), 50);
});
