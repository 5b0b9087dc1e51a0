/**
 * The limits a gateway applies to a route when its ledger row leaves them unset: what keeps one
 * anonymous client from holding a route (issue 11). A mapping (rollout API, `map add`) may set
 * each per route; a gateway may change the fallbacks with its own variables
 * (`GATEWAY_MAX_CONNECTIONS_PER_SOURCE`, `GATEWAY_SILENT_TIMEOUT_MS`, `GATEWAY_IDLE_TIMEOUT_MS`).
 * One place, read by the gateway's config schema, the ledger's row schema and the CLI's help.
 */
export const ROUTE_LIMIT_DEFAULTS = {
  /**
   * Live connections one client address may hold on a route. Well under a mapping's default
   * `maxConnections` (100), so one address cannot take every slot; a site whose clients share one
   * NAT address raises it per mapping.
   */
  maxConnectionsPerSource: 10,
  /**
   * A client that has sent no byte this long after connecting is closed: a connection that
   * never speaks holds a slot and a relayed connection for nothing. Server-first protocols
   * (SMTP, MySQL, VNC) still work: their clients answer the greeting at once.
   */
  silentTimeoutMs: 10_000,
  /**
   * No byte either way for this long closes the tunnel: 30 minutes, the longest idle timeout an
   * Azure load balancer rule allows, so the gateway never holds a flow its load balancer would
   * already have dropped.
   */
  idleTimeoutMs: 1_800_000,
} as const;

/** Largest per-route values the schemas accept. */
export const ROUTE_LIMIT_MAX = {
  maxConnectionsPerSource: 100_000,
  silentTimeoutMs: 600_000,
  idleTimeoutMs: 86_400_000,
} as const;
