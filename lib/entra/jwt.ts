/**
 * Microsoft Entra ID access tokens as the emulators see them: compact JWTs signed with RS256
 * (RFC 7515/7519). One place for the format, shared by the local token issuer (signing) and the
 * relay and IoT Hub emulators (verifying). Pure functions over node:crypto; the clock only comes
 * in through `nowSeconds`.
 *
 * Verification order is the one a resource server follows, and each failure has its own code so
 * the emulators can answer like the service does: malformed → bad signature / unknown issuer →
 * not yet valid / expired → wrong audience.
 */
import { createPrivateKey, createPublicKey, createSign, createVerify, type KeyObject } from "node:crypto";
import { z } from "zod";
import { type ErrorCode, RelayFleetError } from "../errors.ts";

/** Clock skew tolerated on `nbf` and `exp`, as Entra-protected services allow a few minutes. */
export const DEFAULT_CLOCK_SKEW_SECONDS = 0;

/** The claims the emulators rely on (Entra v1 access tokens for a managed identity carry more). */
export const accessTokenClaimsSchema = z
  .object({
    aud: z.string().min(1),
    iss: z.string().min(1),
    exp: z.number().int(),
    nbf: z.number().int().optional(),
    iat: z.number().int().optional(),
    /** Object id of the service principal: what role assignments name. */
    oid: z.string().min(1),
    tid: z.string().optional(),
    appid: z.string().optional(),
    sub: z.string().optional(),
  })
  .passthrough();
export type AccessTokenClaims = z.infer<typeof accessTokenClaimsSchema>;

/** An issuer whose tokens a resource trusts: its `iss` and its signing keys by `kid`. */
export interface TrustedIssuer {
  issuer: string;
  /** kid → public key (PEM or KeyObject). */
  keys: Record<string, string | KeyObject>;
}

/** The trust file's shape (written by the identity emulator, read by the emulators). */
export const trustedIssuerSchema = z.object({
  issuer: z.string().min(1),
  keys: z.record(z.string(), z.string().min(1)),
});

/** Reads a trust file's JSON text. Throws a zod error on a bad file. */
export function parseTrustFile(text: string): TrustedIssuer {
  return trustedIssuerSchema.parse(JSON.parse(text));
}

const headerSchema = z.object({ alg: z.string(), kid: z.string().optional(), typ: z.string().optional() });

function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString("base64url");
}

function fail(code: ErrorCode, message: string): never {
  throw new RelayFleetError(code, message);
}

/** True when `token` has the shape of a compact JWS (three base64url parts), with or without `Bearer `. */
export function looksLikeJwt(token: string): boolean {
  return /^(?:bearer\s+)?[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/i.test(token.trim());
}

/** The raw JWT of an `Authorization`-style value (`Bearer x` or `x`). */
export function stripBearer(token: string): string {
  return token.trim().replace(/^bearer\s+/i, "");
}

/** Signs `claims` with an RSA private key (RS256). */
export function signJwt(
  claims: Record<string, unknown>,
  privateKey: string | KeyObject,
  kid: string,
): string {
  const header = b64url(JSON.stringify({ typ: "JWT", alg: "RS256", kid, x5t: kid }));
  const body = b64url(JSON.stringify(claims));
  const signer = createSign("RSA-SHA256");
  signer.update(`${header}.${body}`);
  const key = typeof privateKey === "string" ? createPrivateKey(privateKey) : privateKey;
  return `${header}.${body}.${signer.sign(key).toString("base64url")}`;
}

/** Claims of a JWT without checking anything (for logs of a refused token's audience, tests). */
export function decodeJwtClaims(token: string): Record<string, unknown> | undefined {
  const parts = stripBearer(token).split(".");
  if (parts.length !== 3) return undefined;
  try {
    const v = JSON.parse(Buffer.from(parts[1]!, "base64url").toString("utf8"));
    return typeof v === "object" && v !== null ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export interface VerifyJwtOptions {
  trusted: readonly TrustedIssuer[];
  /** Accepted audiences; compared without a trailing `/`, case-insensitively. */
  audiences: readonly string[];
  nowSeconds?: number;
  clockSkewSeconds?: number;
}

const normalizeAudience = (a: string) => a.trim().replace(/\/+$/, "").toLowerCase();

/**
 * Verifies a JWT: RS256 signature by a key of a trusted issuer (matched by `iss` and `kid`),
 * `nbf`/`exp` against the clock, `aud` against `audiences`. Throws `RelayFleetError` with
 * `RF_ERR_ENTRA_MALFORMED`, `RF_ERR_ENTRA_UNTRUSTED`, `RF_ERR_ENTRA_BAD_SIGNATURE`,
 * `RF_ERR_ENTRA_NOT_YET_VALID`, `RF_ERR_ENTRA_EXPIRED` or `RF_ERR_ENTRA_WRONG_AUDIENCE`.
 */
export function verifyJwt(token: string, options: VerifyJwtOptions): AccessTokenClaims {
  const raw = stripBearer(token);
  const parts = raw.split(".");
  if (parts.length !== 3) fail("RF_ERR_ENTRA_MALFORMED", "the token is not a compact JWT");
  const [h, b, s] = parts as [string, string, string];
  let header: z.infer<typeof headerSchema>;
  let claims: AccessTokenClaims;
  try {
    header = headerSchema.parse(JSON.parse(Buffer.from(h, "base64url").toString("utf8")));
    claims = accessTokenClaimsSchema.parse(JSON.parse(Buffer.from(b, "base64url").toString("utf8")));
  } catch {
    fail("RF_ERR_ENTRA_MALFORMED", "the token's header or claims are not valid JSON of the expected shape");
  }
  // Only RS256: "none" or an HMAC algorithm would let a caller pick how it is checked.
  if (header.alg !== "RS256") fail("RF_ERR_ENTRA_MALFORMED", `token algorithm ${header.alg} is not accepted`);
  const issuer = options.trusted.find((t) => t.issuer === claims.iss);
  if (!issuer) fail("RF_ERR_ENTRA_UNTRUSTED", `the token issuer ${claims.iss.slice(0, 100)} is not trusted`);
  const candidates = header.kid !== undefined ? [issuer.keys[header.kid]] : Object.values(issuer.keys);
  const signature = Buffer.from(s, "base64url");
  const signed = candidates.some((key) => {
    if (key === undefined) return false;
    const verifier = createVerify("RSA-SHA256");
    verifier.update(`${h}.${b}`);
    return verifier.verify(typeof key === "string" ? createPublicKey(key) : key, signature);
  });
  if (!signed) fail("RF_ERR_ENTRA_BAD_SIGNATURE", "the token signature does not verify");
  const now = options.nowSeconds ?? Math.floor(Date.now() / 1000);
  const skew = options.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS;
  if (claims.nbf !== undefined && claims.nbf > now + skew)
    fail("RF_ERR_ENTRA_NOT_YET_VALID", "the token is not valid yet");
  if (claims.exp <= now - skew) fail("RF_ERR_ENTRA_EXPIRED", "the token is expired");
  const aud = normalizeAudience(claims.aud);
  if (!options.audiences.some((a) => normalizeAudience(a) === aud))
    fail(
      "RF_ERR_ENTRA_WRONG_AUDIENCE",
      `the token audience ${claims.aud.slice(0, 100)} is not accepted here`,
    );
  return claims;
}
