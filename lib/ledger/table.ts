/**
 * A `TableClient` from a storage connection string, working for Azure and for Azurite (plain
 * HTTP on loopback needs `allowInsecureConnection`, which the SDK refuses to infer).
 */
import { TableClient, type TableServiceClientOptions } from "@azure/data-tables";
import type { TokenCredential } from "@azure/identity";

type RetryOptions = NonNullable<TableServiceClientOptions["retryOptions"]>;

/** Creates a table client; plain-HTTP endpoints (Azurite) are allowed only on loopback hosts. */
export function createTableClient(
  connectionString: string,
  table: string,
  options: { retryOptions?: RetryOptions } = {},
): TableClient {
  const endpoint = /TableEndpoint=([^;]+)/i.exec(connectionString)?.[1];
  const insecure = endpoint !== undefined && isLoopbackHttp(endpoint);
  return TableClient.fromConnectionString(connectionString, table, {
    allowInsecureConnection: insecure,
    ...(options.retryOptions ? { retryOptions: options.retryOptions } : {}),
  });
}

/**
 * A table client signed in with an Entra ID credential (the Storage Table Data Reader or
 * Contributor role instead of the account key). Bearer tokens need HTTPS (the SDK refuses them
 * over HTTP); `ca` adds a private CA, e.g. the simulation's Azurite certificate.
 */
export function createTableClientWithCredential(
  tableServiceUrl: string,
  table: string,
  credential: TokenCredential,
  options: { ca?: string | Buffer } = {},
): TableClient {
  return new TableClient(tableServiceUrl, table, credential, {
    ...(options.ca !== undefined ? { tlsOptions: { ca: options.ca.toString() } } : {}),
  });
}

function isLoopbackHttp(endpoint: string): boolean {
  try {
    const url = new URL(endpoint);
    return url.protocol === "http:" && ["127.0.0.1", "localhost", "[::1]"].includes(url.hostname);
  } catch {
    return false;
  }
}

/** HTTP status of a storage SDK error, if any. */
export function statusOf(err: unknown): number | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const status = (err as { statusCode?: unknown }).statusCode;
  return typeof status === "number" ? status : undefined;
}
