/**
 * Azure RBAC on the emulated namespace: role assignments (principal, built-in Relay role, scope)
 * set through the admin API, and the check a bearer (Microsoft Entra ID) token goes through
 * where a SAS token would: signature by a trusted issuer, expiry, audience `https://relay.azure.net`,
 * then a role whose data actions cover the right, assigned at the namespace or at the entity.
 *
 * A scope is an ARM-style id; one that names `/hybridConnections/{name}` covers that entity only,
 * any other (the namespace's id, `/` or empty) covers the whole namespace.
 */

import { type AccessTokenClaims, type TrustedIssuer, verifyJwt } from "../../lib/entra/jwt.ts";
import { AUDIENCES, actionAllowed, findRole } from "../../lib/entra/roles.ts";
import { RelayFleetError } from "../../lib/errors.ts";
import type { Right } from "./options.ts";

export interface RoleAssignment {
  /** The assignment's name (a GUID in Azure). */
  id: string;
  principalId: string;
  /** GUID of the role definition (one of the Azure Relay roles). */
  roleDefinitionId: string;
  roleName: string;
  scope: string;
}

/** The data action a right needs (Manage: only the Owner role's `Microsoft.Relay/*` covers it). */
const DATA_ACTION: Record<Right, string> = {
  Listen: "Microsoft.Relay/namespaces/messages/listen/action",
  Send: "Microsoft.Relay/namespaces/messages/send/action",
  Manage: "Microsoft.Relay/namespaces/manage/action",
};

const ASSIGNMENT_ID = /^[A-Za-z0-9._-]{1,128}$/;
const PRINCIPAL_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function invalid(message: string): RelayFleetError {
  return new RelayFleetError("RF_ERR_RELAYEMU_INVALID", message);
}

/** The hybrid connection a scope is limited to, or undefined for the whole namespace. */
export function scopeEntity(scope: string): string | undefined {
  const m = /\/hybridConnections\/(.+?)\/*$/i.exec(scope);
  return m ? m[1] : undefined;
}

/** Validates and normalizes an assignment (role by GUID, ARM id or display name). */
export function roleAssignment(
  id: string,
  body: { principalId: string; roleDefinitionId: string; scope?: string | undefined },
): RoleAssignment {
  if (!ASSIGNMENT_ID.test(id)) throw invalid(`invalid role assignment name '${id.slice(0, 80)}'`);
  if (!PRINCIPAL_ID.test(body.principalId)) throw invalid("principalId must be an object id (GUID)");
  const role = findRole(body.roleDefinitionId);
  if (!role?.dataActions.every((a) => a.startsWith("Microsoft.Relay/")))
    throw invalid(`'${body.roleDefinitionId.slice(0, 120)}' is not an Azure Relay role`);
  return {
    id,
    principalId: body.principalId.toLowerCase(),
    roleDefinitionId: role.id,
    roleName: role.name,
    scope: body.scope ?? "/",
  };
}

export type BearerResult =
  | { ok: true; claims: AccessTokenClaims }
  | { ok: false; status: 401 | 403; description: string };

/** Service-style descriptions of a refused bearer token (clients only show them; tests match status). */
function describe(err: unknown): string {
  const code = (err as { code?: string }).code;
  if (code === "RF_ERR_ENTRA_EXPIRED") return "ExpiredToken: The token is expired";
  if (code === "RF_ERR_ENTRA_WRONG_AUDIENCE")
    return "InvalidAudience: The token audience is not valid for this resource";
  if (code === "RF_ERR_ENTRA_UNTRUSTED") return "InvalidIssuer: The token issuer is not trusted";
  if (code === "RF_ERR_ENTRA_NOT_YET_VALID") return "InvalidToken: The token is not valid yet";
  if (code === "RF_ERR_ENTRA_MALFORMED") return "MalformedToken: The token is malformed";
  return "InvalidSignature: The token has an invalid signature";
}

/**
 * Checks a bearer token for `right` on entity `hcName` (undefined = the namespace itself).
 * 401 for a token that is not valid here (signature, issuer, expiry, audience), 403 for a valid
 * token whose principal holds no role with the right at a covering scope.
 */
export function authorizeBearer(
  token: string,
  right: Right,
  hcName: string | undefined,
  trusted: readonly TrustedIssuer[],
  assignments: Iterable<RoleAssignment>,
  nowSeconds?: number,
): BearerResult {
  if (trusted.length === 0)
    return {
      ok: false,
      status: 401,
      description: "InvalidToken: Microsoft Entra ID tokens are not accepted here",
    };
  let claims: AccessTokenClaims;
  try {
    claims = verifyJwt(token, {
      trusted,
      audiences: [AUDIENCES.relay],
      ...(nowSeconds !== undefined ? { nowSeconds } : {}),
    });
  } catch (err) {
    return { ok: false, status: 401, description: describe(err) };
  }
  const principal = claims.oid.toLowerCase();
  for (const a of assignments) {
    if (a.principalId !== principal) continue;
    const entity = scopeEntity(a.scope);
    if (entity !== undefined && (hcName === undefined || entity.toLowerCase() !== hcName.toLowerCase()))
      continue;
    const role = findRole(a.roleDefinitionId);
    if (role && actionAllowed(role.dataActions, DATA_ACTION[right])) return { ok: true, claims };
  }
  return {
    ok: false,
    status: 403,
    description: `Unauthorized access. '${right}' claim(s) are required to perform this operation.`,
  };
}
