/**
 * IoT Hub service connection strings: `HostName=…;SharedAccessKeyName=…;SharedAccessKey=…`.
 * Elements split at their first `=`, so base64 padding in the key survives.
 */
import { RelayFleetError } from "../errors.ts";

export interface ServiceConnectionString {
  hostName: string;
  sharedAccessKeyName: string;
  sharedAccessKey: string;
}

/** Parses a service connection string; throws `RF_ERR_IOTHUB_CONNECTION_STRING` naming what is missing. */
export function parseServiceConnectionString(text: string): ServiceConnectionString {
  const fields = new Map<string, string>();
  for (const part of text.split(";")) {
    if (part.trim() === "") continue;
    const eq = part.indexOf("=");
    if (eq <= 0)
      throw new RelayFleetError("RF_ERR_IOTHUB_CONNECTION_STRING", "connection string element without '='");
    fields.set(part.slice(0, eq).trim().toLowerCase(), part.slice(eq + 1).trim());
  }
  const hostName = fields.get("hostname");
  const sharedAccessKeyName = fields.get("sharedaccesskeyname");
  const sharedAccessKey = fields.get("sharedaccesskey");
  const missing = [
    hostName ? undefined : "HostName",
    sharedAccessKeyName ? undefined : "SharedAccessKeyName",
    sharedAccessKey ? undefined : "SharedAccessKey",
  ].filter((x) => x !== undefined);
  if (missing.length > 0 || !hostName || !sharedAccessKeyName || !sharedAccessKey)
    throw new RelayFleetError(
      "RF_ERR_IOTHUB_CONNECTION_STRING",
      `IoT Hub service connection string lacks ${missing.join(", ")}`,
    );
  return { hostName, sharedAccessKeyName, sharedAccessKey };
}
