/**
 * A `TableClient` from a storage connection string, working for Azure and for Azurite (plain
 * HTTP on loopback needs `allowInsecureConnection`, which the SDK refuses to infer).
 */
import { TableClient } from "@azure/data-tables";

/** Creates a table client; plain-HTTP endpoints (Azurite) are allowed only on loopback hosts. */
export function createTableClient(connectionString: string, table: string): TableClient {
  const endpoint = /TableEndpoint=([^;]+)/i.exec(connectionString)?.[1];
  const insecure = endpoint !== undefined && isLoopbackHttp(endpoint);
  return TableClient.fromConnectionString(connectionString, table, { allowInsecureConnection: insecure });
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
