/**
 * SAS authorization the way the service does it (relay-protocol.md §2, §5.8): the token comes from
 * the `ServiceBusAuthorization` header, the `sb-hc-token` query parameter or `Authorization`; it is
 * verified against the rules of the entity and of the namespace (primary or secondary key), then
 * the matched rule's rights are checked. 401 = no/bad/expired token, 403 = valid but not allowed.
 */
import type { IncomingMessage } from "node:http";
import { looksLikeJwt } from "../../lib/entra/jwt.ts";
import { hasErrorCode } from "../../lib/errors.ts";
import { type ParsedSasToken, verifySasToken } from "../../lib/hyco/sas.ts";
import { type AuthorizationRule, grants, type HybridConnection, type Namespace } from "./namespace.ts";
import type { Right } from "./options.ts";
import { authorizeBearer } from "./role-assignments.ts";

export type AuthResult =
  | { ok: true; expiresAt: number; token?: ParsedSasToken; rule?: AuthorizationRule; principalId?: string }
  | { ok: false; status: 401 | 403; description: string };

/** The token a request carries, or undefined. Header first, as hyco-ws and .NET send it there. */
export function tokenFromRequest(req: IncomingMessage, query: URLSearchParams): string | undefined {
  const header = req.headers.servicebusauthorization;
  if (typeof header === "string" && header.length > 0) return header;
  const fromQuery = query.get("sb-hc-token");
  if (fromQuery) return fromQuery;
  const authz = req.headers.authorization;
  if (typeof authz === "string" && authz.length > 0) return authz;
  return undefined;
}

/** Service-style descriptions; clients only show them, tests match on status. */
function describeFailure(err: unknown): { status: 401 | 403; description: string } {
  if (hasErrorCode(err, "RF_ERR_SAS_EXPIRED"))
    return { status: 401, description: "ExpiredToken: The token is expired" };
  if (hasErrorCode(err, "RF_ERR_SAS_WRONG_AUDIENCE")) {
    return { status: 403, description: "InvalidAudience: The token audience does not match the endpoint" };
  }
  if (hasErrorCode(err, "RF_ERR_SAS_MALFORMED"))
    return { status: 401, description: "MalformedToken: The token is malformed" };
  return { status: 401, description: "InvalidSignature: The token has an invalid signature" };
}

// Senders reuse one token for many connects (ours for an hour): re-deriving its HMAC and parsing
// its audience on every upgrade cost ~75 µs of the connect path. A hit needs the same token, the
// same rule keys (a regenerated key misses), entity path and host, so only the clock can change
// the answer, and expiry is checked on every hit. Failures are never cached.
const verified = new Map<string, ParsedSasToken>();
const VERIFIED_MAX = 1000;

function verifyCached(
  token: string,
  rule: AuthorizationRule,
  entityPath: string,
  host: string | undefined,
  nowSeconds: number | undefined,
): ParsedSasToken {
  const key = `${token}\n${rule.primaryKey}\n${rule.secondaryKey}\n${entityPath}\n${host ?? ""}`;
  const hit = verified.get(key);
  if (hit && hit.expiresAt > (nowSeconds ?? Math.floor(Date.now() / 1000))) return hit;
  const parsed = verifySasToken(token, {
    keysFor: () => [rule.primaryKey, rule.secondaryKey],
    entityPath,
    ...(host !== undefined ? { host } : {}),
    ...(nowSeconds !== undefined ? { nowSeconds } : {}),
  });
  if (verified.size >= VERIFIED_MAX) verified.clear();
  verified.set(key, parsed);
  return parsed;
}

/**
 * Verifies `token` for `right` on `hc` (or on the namespace itself when `hc` is undefined).
 * A rule name can exist at both levels with different keys, so each candidate rule is tried in
 * turn and the rights come from the one whose key signed the token.
 */
export function authorize(
  ns: Namespace,
  hc: HybridConnection | undefined,
  right: Right,
  token: string | undefined,
  options: { host?: string | undefined; nowSeconds?: number; suffix?: string } = {},
): AuthResult {
  if (!token)
    return { ok: false, status: 401, description: "MissingToken: The request requires a SAS token" };
  // A Microsoft Entra ID token (raw JWT, as the .NET SDK sends it, or `Bearer …`): Azure RBAC.
  if (looksLikeJwt(token)) {
    const bearer = authorizeBearer(
      token,
      right,
      hc?.name,
      ns.trustedIssuers,
      ns.roleAssignments.values(),
      options.nowSeconds,
    );
    return bearer.ok ? { ok: true, expiresAt: bearer.claims.exp, principalId: bearer.claims.oid } : bearer;
  }
  let failure: { status: 401 | 403; description: string } | undefined;
  let keyName = "";
  try {
    // parse once so the rule name can be looked up; verifySasToken parses again, cheaply
    keyName = /(?:^|[\s&])skn=([^&]*)/.exec(token)?.[1] ?? "";
    keyName = decodeURIComponent(keyName);
  } catch {
    keyName = "";
  }
  const candidates = [hc?.rules.get(keyName), ns.rules.get(keyName)].filter(
    (r): r is AuthorizationRule => r !== undefined,
  );
  if (candidates.length === 0) {
    const malformed = /^\s*sharedaccesssignature\s/i.test(token)
      ? undefined
      : describeFailure({ code: "RF_ERR_SAS_MALFORMED" });
    return {
      ok: false,
      ...(malformed ?? { status: 401, description: "InvalidSignature: Unknown authorization rule" }),
    };
  }
  for (const rule of candidates) {
    try {
      // Clients sign the path they address, suffix included (hyco-ws does); a prefix covers it.
      const entityPath = hc ? `${hc.name}${options.suffix ?? ""}` : "";
      const parsed = verifyCached(token, rule, entityPath, options.host, options.nowSeconds);
      if (!grants(rule, right)) {
        return {
          ok: false,
          status: 403,
          description: `Unauthorized access. '${right}' claim(s) are required to perform this operation.`,
        };
      }
      return { ok: true, expiresAt: parsed.expiresAt, token: parsed, rule };
    } catch (err) {
      const f = describeFailure(err);
      // A bad signature under one rule may still verify under the other level's rule of that name.
      if (!failure || !hasErrorCode(err, "RF_ERR_SAS_BAD_SIGNATURE")) failure = f;
    }
  }
  return {
    ok: false,
    ...(failure ?? { status: 401, description: "InvalidSignature: The token has an invalid signature" }),
  };
}
