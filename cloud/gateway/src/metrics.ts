/**
 * Prometheus metrics of one gateway (prom-client, own registry so tests can build several).
 * Labels are the route key (`<port>` or `<port>:<hostname>`) — bounded by the ledger, never by
 * client input: refusals of an unknown name are counted on the port's key.
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { collectStandardDefaultMetrics } from "../../../lib/default-metrics.ts";

/** Why a connection was refused; the `reason` label of `gateway_connections_refused_total`. */
export type RefusalReason =
  | "allowlist"
  | "max_connections"
  | "max_connections_per_source"
  | "rate_limited"
  | "unknown_name"
  | "no_sni"
  | "bad_client_hello"
  | "bad_http_request"
  | "first_bytes_timeout"
  | "no_listener"
  | "circuit_open"
  | "relay_error"
  | "port_rejected"
  | "draining"
  | "no_route";

export interface GatewayMetrics {
  registry: Registry;
  active: Gauge<"route">;
  total: Counter<"route">;
  refused: Counter<"route" | "reason">;
  bytes: Counter<"route" | "direction">;
  /** Tunnels closed by a timeout: `silent` (the client sent nothing) or `idle` (no byte either way). */
  timedOut: Counter<"route" | "reason">;
  /** The limits each route runs with (its own or the gateway's defaults), reset at each reload. */
  routeLimit: Gauge<"route" | "limit">;
  setupSeconds: Histogram<"route">;
  routes: Gauge;
  listeningPorts: Gauge;
  unboundPorts: Gauge;
  bindFailures: Counter<"port">;
  reloads: Counter<"result">;
  /** Ledger entities read, by query kind (full / delta): flat at steady state, whatever the fleet size. */
  ledgerRowsRead: Counter<"kind">;
  badRows: Gauge;
  openCircuits: Gauge;
  standbyTakes: Counter<"result">;
  /** Entra ID token fetches for Azure Relay, by result (ok / failed). */
  relayTokenRefreshes: Counter<"result">;
  /** Tunnels the relay refused for the gateway's credentials, by status (401 / 403). */
  relayAuthRefusals: Counter<"status">;
  /** Where `gateway_relay_token_expires_in_seconds` reads from (undefined: SAS mode, not exported). */
  setTokenExpirySource(expiresAt: () => number | undefined): void;
  /** Where `gateway_standby_ready` reads from at scrape time. */
  setStandbySource(ready: () => number): void;
}

export function createMetrics(options: { defaultMetrics?: boolean } = {}): GatewayMetrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectStandardDefaultMetrics(registry);
  const registers = [registry];
  let standbyReady = () => 0;
  let tokenExpiresAt: () => number | undefined = () => undefined;
  new Gauge({
    name: "gateway_relay_token_expires_in_seconds",
    help: "Seconds until the gateway's Entra ID token for Azure Relay expires (negative or 0: none valid)",
    registers,
    collect() {
      const at = tokenExpiresAt();
      if (at !== undefined) this.set(Math.round((at - Date.now()) / 1000));
    },
  });
  new Gauge({
    name: "gateway_standby_ready",
    help: "Standby connections ready, over all sites",
    registers,
    collect() {
      this.set(standbyReady());
    },
  });
  return {
    registry,
    active: new Gauge({
      name: "gateway_connections_active",
      help: "Open client connections",
      labelNames: ["route"],
      registers,
    }),
    total: new Counter({
      name: "gateway_connections_total",
      help: "Client connections accepted on a route",
      labelNames: ["route"],
      registers,
    }),
    refused: new Counter({
      name: "gateway_connections_refused_total",
      help: "Client connections refused, by reason",
      labelNames: ["route", "reason"],
      registers,
    }),
    bytes: new Counter({
      name: "gateway_bytes_total",
      help: "Bytes relayed; direction in = client to site, out = site to client",
      labelNames: ["route", "direction"],
      registers,
    }),
    timedOut: new Counter({
      name: "gateway_connections_timed_out_total",
      help: "Tunnels closed by a timeout; reason silent = no byte from the client after connecting, idle = no byte either way",
      labelNames: ["route", "reason"],
      registers,
    }),
    routeLimit: new Gauge({
      name: "gateway_route_limit",
      help: "Limits in force per route (the row's own or the gateway's default): max_connections, max_connections_per_source (0 = none), silent_timeout_seconds, idle_timeout_seconds (0 = never)",
      labelNames: ["route", "limit"],
      registers,
    }),
    setupSeconds: new Histogram({
      name: "gateway_tunnel_setup_seconds",
      help: "Time from accepting a client to the site's preamble answer",
      labelNames: ["route"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    routes: new Gauge({ name: "gateway_routes", help: "Routes in the loaded routing table", registers }),
    listeningPorts: new Gauge({
      name: "gateway_listening_ports",
      help: "Public ports being listened on",
      registers,
    }),
    unboundPorts: new Gauge({
      name: "gateway_ports_unbound",
      help: "Public ports in the routing table that could not be listened on (each retried on its own backoff)",
      registers,
    }),
    bindFailures: new Counter({
      name: "gateway_port_bind_failures_total",
      help: "Failed attempts to listen on a public port, by port",
      labelNames: ["port"],
      registers,
    }),
    reloads: new Counter({
      name: "gateway_reloads_total",
      help: "Routing table reloads, by result",
      labelNames: ["result"],
      registers,
    }),
    ledgerRowsRead: new Counter({
      name: "gateway_ledger_rows_read_total",
      help: "Ledger entities read (rows and tombstones), by query kind: full or delta (changes only)",
      labelNames: ["kind"],
      registers,
    }),
    badRows: new Gauge({
      name: "gateway_ledger_bad_rows",
      help: "Ledger rows skipped in the last reload",
      registers,
    }),
    openCircuits: new Gauge({
      name: "gateway_open_circuits",
      help: "Sites whose circuit breaker is open",
      registers,
    }),
    standbyTakes: new Counter({
      name: "gateway_standby_takes_total",
      help: "Tunnels opened over a standby connection (hit) or through the relay's rendezvous (miss)",
      labelNames: ["result"],
      registers,
    }),
    relayTokenRefreshes: new Counter({
      name: "gateway_relay_token_refreshes_total",
      help: "Entra ID token fetches for Azure Relay by the managed identity, by result",
      labelNames: ["result"],
      registers,
    }),
    relayAuthRefusals: new Counter({
      name: "gateway_relay_auth_refusals_total",
      help: "Tunnels the relay refused for the gateway's credentials (401 invalid token, 403 missing role)",
      labelNames: ["status"],
      registers,
    }),
    setTokenExpirySource(expiresAt) {
      tokenExpiresAt = expiresAt;
    },
    setStandbySource(ready) {
      standbyReady = ready;
    },
  };
}
