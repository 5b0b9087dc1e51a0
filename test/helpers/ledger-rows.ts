/**
 * Ledger rows as the gateway reads them (lib/ledger/schema.ts), for unit tests that build a
 * routing table without Table storage: a site row and a route row with every field at its default.
 */
export const ledgerSiteRow = (id: string, key = "k1") => ({
  partitionKey: "site",
  rowKey: id,
  hybridConnection: `site-${id}`,
  relayEndpoint: "sb://relay.example",
  sendKeyName: "send",
  sendKey: key,
  deviceId: id,
  createdAt: "2025-01-01T00:00:00Z",
});

/** A route of site s1: `port` for plain TCP, `port:hostname` for a TLS SNI route. */
export const ledgerRouteRow = (rowKey: string, fields: Record<string, unknown> = {}) => {
  const [port, host] = rowKey.split(":");
  return {
    partitionKey: "route",
    rowKey,
    kind: host ? "tls-sni" : "tcp",
    port: Number(port),
    ...(host ? { hostname: host } : {}),
    siteId: "s1",
    portName: "rdp",
    allowCidrs: "[]",
    maxConnections: 0,
    ratePerMinute: 0,
    idleTimeoutMs: 0,
    proxyProtocol: false,
    ...fields,
  };
};
