/**
 * IoT Hub shared access signatures (iothub-protocol.md §4), on the project's one SAS codec
 * (`lib/hyco/sas.ts`). They differ from Azure Relay's in two ways: the HMAC key is the
 * base64-*decoded* key, and device/module tokens carry no `skn`. Signing uses the `sr` substring
 * exactly as sent.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { errorMessage } from "../../lib/errors.ts";
import { parseSasFields, signSas } from "../../lib/hyco/sas.ts";
import { HubError } from "./errors.ts";

export interface HubSasToken {
  /** `sr` exactly as it appears in the token (URL-encoded): the signed string. */
  rawResource: string;
  /** `sr` decoded. */
  resource: string;
  signature: string;
  expiresAt: number;
  /** Policy name; absent for device and module tokens. */
  keyName?: string;
}

function unauthorized(reason: string): HubError {
  return new HubError("IotHubUnauthorizedAccess", reason);
}

/** Parses `SharedAccessSignature sr=…&sig=…&se=…[&skn=…]` in any field order. */
export function parseHubSasToken(token: unknown): HubSasToken {
  try {
    return parseSasFields(token);
  } catch (err) {
    throw unauthorized(errorMessage(err));
  }
}

function sign(keyBase64: string, rawResource: string, expiresAt: number): Buffer {
  return Buffer.from(signSas(keyBase64, rawResource, expiresAt, "base64"), "base64");
}

/** Creates a token the way the SDKs do (`sr` = encoded resource, key base64-decoded). */
export function createHubSasToken(
  resource: string,
  keyBase64: string,
  options: { keyName?: string; ttlSeconds?: number; nowSeconds?: number } = {},
): string {
  const now = options.nowSeconds ?? Math.floor(Date.now() / 1000);
  const se = now + (options.ttlSeconds ?? 3600);
  const sr = encodeURIComponent(resource);
  const sig = encodeURIComponent(sign(keyBase64, sr, se).toString("base64"));
  const skn = options.keyName ? `&skn=${encodeURIComponent(options.keyName)}` : "";
  return `SharedAccessSignature sr=${sr}&sig=${sig}${skn}&se=${se}`;
}

/** HMAC-SHA256 of `data` with a base64 key, base64: what the edge workload API's `/sign` returns. */
export function signWithKey(keyBase64: string, data: Buffer): string {
  return createHmac("sha256", Buffer.from(keyBase64, "base64")).update(data).digest("base64");
}

/**
 * Verifies `token` against `keys` for `resource` (prefix match on path segments, case-insensitive
 * as IoT Hub does). Throws `HubError` IotHubUnauthorizedAccess with the reason.
 */
export function verifyHubSasToken(
  token: unknown,
  keys: readonly string[],
  resource: string,
  nowSeconds = Math.floor(Date.now() / 1000),
): HubSasToken {
  const parsed = parseHubSasToken(token);
  const given = Buffer.from(parsed.signature, "base64");
  const ok = keys.some((key) => {
    const expected = sign(key, parsed.rawResource, parsed.expiresAt);
    return expected.length === given.length && timingSafeEqual(expected, given);
  });
  if (!ok) throw unauthorized("SAS token signature is invalid");
  if (parsed.expiresAt <= nowSeconds) throw unauthorized("SAS token has expired");
  const have = parsed.resource.toLowerCase().replace(/\/+$/, "");
  const want = resource.toLowerCase();
  if (!(want === have || want.startsWith(`${have}/`)))
    throw unauthorized(`SAS token is for '${parsed.resource}', not '${resource}'`);
  return parsed;
}

/** A new 32-byte symmetric key, base64, like the hub generates. */
export function generateKey(): string {
  return randomBytes(32).toString("base64");
}
