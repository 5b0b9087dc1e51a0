/**
 * Shared Access Signature tokens for Azure Relay (relay-protocol.md §2): create, parse, verify.
 * Pure functions: no sockets, no clocks except through the `nowSeconds` arguments. The one SAS
 * codec of the project: the IoT Hub emulator parses and signs its tokens with it too
 * (`sim/iothub-emulator/auth.ts`), where the key is base64-decoded and `skn` is optional.
 *
 *   SharedAccessSignature sr={enc(resource)}&sig={enc(base64(HMAC-SHA256(key, enc(resource) + "\n" + se)))}&se={unix}&skn={rule}
 *
 * The HMAC key is the UTF-8 bytes of the key string as given (not base64-decoded), and the string
 * to sign is the `sr` value exactly as it appears in the token: clients encode it differently
 * (upper/lower-case escapes), so a verifier must sign the raw substring, never a re-encoding.
 */
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { RelayFleetError } from "../errors.ts";

export const SAS_PREFIX = "SharedAccessSignature ";

/** Default token lifetime: 2 h, comfortably above a renewal interval of one hour (§3.6). */
export const DEFAULT_TOKEN_TTL_SECONDS = 7200;

export interface ParsedSasToken {
  /** `sr` exactly as it appears in the token (still URL-encoded): what was signed. */
  rawResource: string;
  /** `sr` URL-decoded. */
  resource: string;
  /** Signature, URL-decoded base64. */
  signature: string;
  /** Expiry, unix seconds. */
  expiresAt: number;
  /** Authorization rule name (`skn`). */
  keyName: string;
}

/**
 * How a key string becomes HMAC key bytes: Azure Relay signs with the key's UTF-8 bytes as
 * given, IoT Hub with the base64-decoded key.
 */
export type SasKeyEncoding = "utf8" | "base64";

/** The signature of `rawResource` (as it appears in the token) and expiry, base64. */
export function signSas(
  key: string,
  rawResource: string,
  expiresAt: number,
  keyEncoding: SasKeyEncoding = "utf8",
): string {
  return createHmac("sha256", Buffer.from(key, keyEncoding))
    .update(`${rawResource}\n${expiresAt}`)
    .digest("base64");
}

const sign = (key: string, rawResource: string, expiresAt: number) => signSas(key, rawResource, expiresAt);

/**
 * The audience the Azure SDKs sign for an entity: `http://{host}/{path}` with the scheme forced to
 * http, no port, no `$hc/` and no query. Accepts `sb://`, `wss://`, `https://` or a bare host.
 */
export function audienceFor(endpoint: string, entityPath = ""): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(endpoint) ? endpoint : `sb://${endpoint}`;
  const url = new URL(withScheme);
  const path = entityPath.replace(/^\/+/, "").replace(/^\$hc\//i, "");
  return `http://${url.hostname.toLowerCase()}/${path}`;
}

/** Creates a token for `resource` (see {@link audienceFor}) signed with `key` of rule `keyName`. */
export function createSasToken(
  resource: string,
  keyName: string,
  key: string,
  options: { ttlSeconds?: number; nowSeconds?: number } = {},
): string {
  const now = options.nowSeconds ?? Math.floor(Date.now() / 1000);
  const expiresAt = now + (options.ttlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS);
  const rawResource = encodeURIComponent(resource);
  const signature = sign(key, rawResource, expiresAt);
  return `${SAS_PREFIX}sr=${rawResource}&sig=${encodeURIComponent(signature)}&se=${expiresAt}&skn=${encodeURIComponent(keyName)}`;
}

function malformed(reason: string): RelayFleetError {
  return new RelayFleetError("RF_ERR_SAS_MALFORMED", `malformed SAS token: ${reason}`);
}

function safeDecode(value: string, field: string): string {
  try {
    return decodeURIComponent(value.replace(/\+/g, "%20"));
  } catch {
    throw malformed(`${field} is not valid URL encoding`);
  }
}

/** Parses a token; field order is free. Throws `RF_ERR_SAS_MALFORMED` (status 401) on anything odd. */
export function parseSasToken(token: string): ParsedSasToken {
  const parsed = parseSasFields(token);
  if (parsed.keyName === undefined) throw malformed("missing skn");
  return { ...parsed, keyName: parsed.keyName };
}

/**
 * Parses a token whose `skn` may be absent (IoT Hub device and module tokens carry none); field
 * order is free, a field given twice is refused. Throws `RF_ERR_SAS_MALFORMED`.
 */
export function parseSasFields(token: unknown): Omit<ParsedSasToken, "keyName"> & { keyName?: string } {
  if (typeof token !== "string") throw malformed("not a string");
  const trimmed = token.trim();
  if (!trimmed.toLowerCase().startsWith(SAS_PREFIX.toLowerCase()))
    throw malformed("missing 'SharedAccessSignature' prefix");
  const fields = new Map<string, string>();
  for (const pair of trimmed.slice(SAS_PREFIX.length).split("&")) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw malformed(`field '${pair.slice(0, 20)}' has no value`);
    const name = pair.slice(0, eq);
    if (fields.has(name)) throw malformed(`field '${name}' appears twice`);
    fields.set(name, pair.slice(eq + 1));
  }
  const rawResource = fields.get("sr");
  const sig = fields.get("sig");
  const se = fields.get("se");
  const skn = fields.get("skn");
  if (!rawResource) throw malformed("missing sr");
  if (!sig) throw malformed("missing sig");
  if (!se || !/^\d{1,12}$/.test(se)) throw malformed("se is not a unix time");
  return {
    rawResource,
    resource: safeDecode(rawResource, "sr"),
    signature: safeDecode(sig, "sig"),
    expiresAt: Number(se),
    ...(skn ? { keyName: safeDecode(skn, "skn") } : {}),
  };
}

/**
 * Normalises an audience for comparison: scheme and port dropped, host lower-cased, `$hc/` and
 * trailing slashes removed, path compared case-insensitively (hybrid connection names are).
 */
export function normalizeAudience(resource: string): { host: string; path: string } {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(resource) ? resource : `http://${resource}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new RelayFleetError("RF_ERR_SAS_MALFORMED", "malformed SAS token: sr is not a URI");
  }
  const path = decodeURIComponent(url.pathname)
    .replace(/^\/+/, "")
    .replace(/^\$hc\//i, "")
    .replace(/\/+$/, "")
    .toLowerCase();
  return { host: url.hostname.toLowerCase(), path };
}

export interface VerifyOptions {
  /** Keys by rule name; a rule may have two keys (primary and secondary) during rotation. */
  keysFor: (keyName: string) => readonly string[] | undefined;
  /** Entity path the request addresses (hybrid connection name, optionally with suffix). */
  entityPath: string;
  /** Host the request addressed; when set, the token's host must equal it. */
  host?: string;
  nowSeconds?: number;
}

/**
 * Verifies a token for an entity. Returns the parsed token; throws `RelayFleetError` with code
 * `RF_ERR_SAS_MALFORMED` / `RF_ERR_SAS_UNKNOWN_RULE` / `RF_ERR_SAS_BAD_SIGNATURE` /
 * `RF_ERR_SAS_EXPIRED` (all status 401) or `RF_ERR_SAS_WRONG_AUDIENCE` (status 403).
 * Rights are the caller's business: they depend on the rule, not the token.
 */
export function verifySasToken(token: string, options: VerifyOptions): ParsedSasToken {
  const parsed = parseSasToken(token);
  const keys = options.keysFor(parsed.keyName);
  if (!keys || keys.length === 0) {
    throw new RelayFleetError("RF_ERR_SAS_UNKNOWN_RULE", `unknown authorization rule '${parsed.keyName}'`);
  }
  const given = Buffer.from(parsed.signature, "base64");
  const valid = keys.some((key) => {
    const expected = Buffer.from(sign(key, parsed.rawResource, parsed.expiresAt), "base64");
    return expected.length === given.length && timingSafeEqual(expected, given);
  });
  if (!valid) throw new RelayFleetError("RF_ERR_SAS_BAD_SIGNATURE", "SAS token signature is invalid");
  const now = options.nowSeconds ?? Math.floor(Date.now() / 1000);
  if (parsed.expiresAt <= now) {
    throw new RelayFleetError(
      "RF_ERR_SAS_EXPIRED",
      `SAS token expired at ${new Date(parsed.expiresAt * 1000).toISOString()}`,
    );
  }
  const audience = normalizeAudience(parsed.resource);
  const entity = normalizeAudience(`http://x/${options.entityPath}`).path;
  if (options.host !== undefined && audience.host !== options.host.toLowerCase()) {
    throw new RelayFleetError("RF_ERR_SAS_WRONG_AUDIENCE", `token is for host '${audience.host}'`);
  }
  // A namespace token (empty path) covers every entity; otherwise a path-prefix on segment bounds.
  const covers = audience.path === "" || entity === audience.path || entity.startsWith(`${audience.path}/`);
  if (!covers) {
    throw new RelayFleetError(
      "RF_ERR_SAS_WRONG_AUDIENCE",
      `token is for '${audience.path}', not '${entity}'`,
    );
  }
  return parsed;
}

/**
 * A short, non-reversible fingerprint of a key, safe to report and log: lets the rollout service
 * see which key a module runs without the key itself ever leaving the twin's desired section.
 */
export function keyFingerprint(key: string): string {
  return createHash("sha256").update(key, "utf8").digest("hex").slice(0, 12);
}
