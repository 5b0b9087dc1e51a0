/**
 * Gateway process entry point (plain Node or the container): configuration from the
 * environment, ledger reader, public listeners, admin port, SIGHUP reload, SIGTERM drain.
 */
import { readFileSync } from "node:fs";
import { ManagedIdentityCredential } from "@azure/identity";
import { RefreshingToken } from "../../../lib/entra/refreshing-token.ts";
import { errorMessage } from "../../../lib/errors.ts";
import { StandbyPools } from "../../../lib/hyco/standby-pools.ts";
import { LedgerFollower } from "../../../lib/ledger/follow-ledger.ts";
import { createTableClient, createTableClientWithCredential } from "../../../lib/ledger/table.ts";
import { createLogger } from "../../../lib/log.ts";
import { createAdminServer, isLoopbackHost } from "./admin-server.ts";
import { loadConfig, RELAY_TOKEN_SCOPE } from "./config.ts";
import { Gateway } from "./gateway.ts";
import { createMetrics } from "./metrics.ts";
import { type RelayAuth, relayTunnelOpener } from "./relay-tunnel.ts";
import { StatusReporter } from "./status-report.ts";

const log = createLogger("gateway");

async function main(): Promise<void> {
  const config = loadConfig();
  const metrics = createMetrics();
  // One managed identity for everything the gateway reaches in Azure (App Service / Functions
  // protocol via IDENTITY_ENDPOINT, IMDS on a VM scale set): no key in its settings.
  const credential = new ManagedIdentityCredential(
    config.AZURE_CLIENT_ID ? { clientId: config.AZURE_CLIENT_ID } : undefined,
  );
  const table = config.LEDGER_TABLE_URL
    ? createTableClientWithCredential(config.LEDGER_TABLE_URL, config.LEDGER_TABLE, credential, {
        ...(config.LEDGER_CA_FILE ? { ca: readFileSync(config.LEDGER_CA_FILE) } : {}),
      })
    : createTableClient(config.LEDGER_CONNECTION_STRING ?? "", config.LEDGER_TABLE);
  let relayToken: RefreshingToken | undefined;
  let lastRefusal: { status: number; site: string; at: string } | undefined;
  if (config.GATEWAY_RELAY_AUTH === "entra") {
    relayToken = new RefreshingToken(credential, RELAY_TOKEN_SCOPE, {
      onRefresh(result, error) {
        metrics.relayTokenRefreshes.inc({ result });
        // The token itself is never logged; the credential's message names the cause.
        if (result === "failed")
          log.warn({ event: "relay-token-refresh-failed", error }, "Entra ID token refresh failed");
        else log.debug({ event: "relay-token-refreshed" }, "Entra ID token refreshed");
      },
    });
    const source = relayToken;
    metrics.setTokenExpirySource(() => source.status().expiresAt);
  }
  const auth: RelayAuth = relayToken
    ? { kind: "entra", token: () => relayToken?.current() }
    : { kind: "sas" };
  const ca = config.RELAY_CA_FILE ? readFileSync(config.RELAY_CA_FILE) : undefined;
  const standby =
    config.GATEWAY_STANDBY_CONNECTIONS > 0
      ? new StandbyPools({
          size: config.GATEWAY_STANDBY_CONNECTIONS,
          maxSize: config.GATEWAY_STANDBY_MAX,
          warmForMs: config.GATEWAY_STANDBY_WARM_MS,
          onTake: (hit) => metrics.standbyTakes.inc({ result: hit ? "hit" : "miss" }),
        })
      : undefined;
  if (standby) metrics.setStandbySource(() => standby.ready);
  let reporter: StatusReporter | undefined;
  // Reads the ledger in full once, then only its changes (issue 18: cost flat in fleet size).
  const ledger = new LedgerFollower(table, {
    fullReadIntervalMs: config.LEDGER_FULL_READ_INTERVAL_MS,
    onRead: ({ kind, rows }) => metrics.ledgerRowsRead.inc({ kind }, rows),
  });
  const gateway: Gateway = new Gateway({
    onStateChange: () => reporter?.changed(),
    loadLedger: () => ledger.read(),
    openTunnel: relayTunnelOpener({
      ca,
      timeoutMs: config.GATEWAY_CONNECT_TIMEOUT_MS,
      standby,
      auth,
      onAuthRefused(status, site) {
        metrics.relayAuthRefusals.inc({ status: String(status) });
        lastRefusal = { status, site, at: new Date().toISOString() };
        log.warn(
          { event: "relay-auth-refused", status, site, auth: config.GATEWAY_RELAY_AUTH },
          status === 403
            ? "the relay refused the gateway: its identity lacks the Azure Relay Sender role on this hybrid connection"
            : "the relay refused the gateway's token (invalid, expired or for another audience)",
        );
      },
    }),
    metrics,
    log,
    bindHost: config.GATEWAY_BIND_HOST,
    reloadIntervalMs: config.LEDGER_RELOAD_INTERVAL_MS,
    reloadMinIntervalMs: config.GATEWAY_RELOAD_MIN_INTERVAL_MS,
    firstBytesTimeoutMs: config.GATEWAY_FIRST_BYTES_TIMEOUT_MS,
    routeDefaults: {
      maxConnectionsPerSource: config.GATEWAY_MAX_CONNECTIONS_PER_SOURCE,
      silentTimeoutMs: config.GATEWAY_SILENT_TIMEOUT_MS,
      idleTimeoutMs: config.GATEWAY_IDLE_TIMEOUT_MS,
    },
    breaker: {
      threshold: config.GATEWAY_BREAKER_THRESHOLD,
      maxBackoffMs: config.GATEWAY_BREAKER_MAX_BACKOFF_MS,
    },
  });
  const admin = createAdminServer({
    gateway,
    metrics,
    log,
    host: config.GATEWAY_HEALTH_HOST,
    ...(config.GATEWAY_ADMIN_TOKEN ? { token: config.GATEWAY_ADMIN_TOKEN } : {}),
    relayAuth: () => {
      const status = relayToken?.status();
      return {
        ready: status === undefined || status.state === "ok" || status.state === "refresh-failing",
        mode: config.GATEWAY_RELAY_AUTH,
        ...(status ? { token: status.state, consecutiveFailures: status.consecutiveFailures } : {}),
        ...(status?.lastError ? { lastError: status.lastError } : {}),
        ...(lastRefusal ? { lastRefusal } : {}),
      };
    },
  });
  await new Promise<void>((resolve, reject) => {
    admin.once("error", reject);
    admin.listen(config.GATEWAY_HEALTH_PORT, config.GATEWAY_HEALTH_HOST, resolve);
  });
  const adminPort = (admin.address() as { port: number }).port;
  log.info({ event: "admin-listening", port: adminPort }, "admin port open");
  if (!config.GATEWAY_ADMIN_TOKEN && !isLoopbackHost(config.GATEWAY_HEALTH_HOST))
    log.warn(
      { event: "admin-locked", host: config.GATEWAY_HEALTH_HOST },
      "no GATEWAY_ADMIN_TOKEN: /metrics and /reload refuse (403); /healthz and /readyz stay open",
    );
  // The first token before the first tunnel; a failure is retried in the background (readyz 503).
  await relayToken?.start();
  reporter = new StatusReporter({
    // Same storage account and credential as the ledger, its own table.
    client: config.LEDGER_TABLE_URL
      ? createTableClientWithCredential(config.LEDGER_TABLE_URL, config.GATEWAY_STATUS_TABLE, credential, {
          ...(config.LEDGER_CA_FILE ? { ca: readFileSync(config.LEDGER_CA_FILE) } : {}),
        })
      : createTableClient(config.LEDGER_CONNECTION_STRING ?? "", config.GATEWAY_STATUS_TABLE),
    instanceId: config.GATEWAY_INSTANCE_ID,
    heartbeatMs: config.LEDGER_RELOAD_INTERVAL_MS > 0 ? config.LEDGER_RELOAD_INTERVAL_MS : 30_000,
    snapshot: () => ({
      ready: gateway.ready,
      listening: gateway.listeningCount,
      unbound: gateway.unbound(),
    }),
    log,
  });
  // A failed first load is not fatal: /readyz stays 503 and the periodic reload retries.
  const first = await gateway.start();
  reporter.start();
  log.info({ event: "started", ok: first.ok, routes: first.routes, ports: first.ports }, "gateway started");

  process.on("SIGHUP", () => void gateway.reload());
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ event: "draining", signal, live: gateway.liveTunnels }, "draining");
    standby?.close();
    relayToken?.close();
    const aborted = await gateway.drain(config.GATEWAY_DRAIN_TIMEOUT_MS);
    await reporter?.stop();
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
