/**
 * Microsoft Entra ID on the emulated hub's service API: a bearer token must be signed by a trusted
 * issuer, unexpired, for the audience `https://iothubs.azure.net`, and its principal (`oid`) must
 * hold a role at the hub whose data actions cover the request (IoT Hub Registry / Twin / Data
 * Contributor, Data Reader; lib/entra/roles.ts). The data action of each route follows IoT Hub's
 * list (`Microsoft.Devices/IotHubs/devices/read`, `…/twins/write`, …).
 *
 * Refusals are 401 `IotHubUnauthorizedAccess`, with a message that names the cause; the real
 * hub's exact answer for a missing role is not documented in what we could read [unsure].
 */
import { type TrustedIssuer, verifyJwt } from "../../lib/entra/jwt.ts";
import { AUDIENCES, actionAllowed, findRole } from "../../lib/entra/roles.ts";
import { HubError } from "./errors.ts";

export interface HubRoleAssignment {
  id: string;
  principalId: string;
  roleDefinitionId: string;
  roleName: string;
}

const A = "Microsoft.Devices/IotHubs";

/** The data action a service API request needs. */
export function dataActionFor(method: string, path: string): string {
  const m = method.toUpperCase();
  if (/^\/devices\/query\/?$/.test(path)) return `${A}/twins/read`;
  if (/^\/devices\/[^/]+\/applyConfigurationContent\/?$/.test(path))
    return `${A}/configurations/applyToEdgeDevice/action`;
  if (/^\/twins\/.+\/methods\/?$/.test(path)) return `${A}/directMethods/invoke/action`;
  if (/^\/configurations(\/|$)/.test(path))
    return `${A}/configurations/${m === "GET" ? "read" : m === "DELETE" ? "delete" : "write"}`;
  if (/^\/twins(\/|$)/.test(path)) return `${A}/twins/${m === "GET" ? "read" : "write"}`;
  if (/^\/devices(\/|$)/.test(path))
    return `${A}/devices/${m === "GET" ? "read" : m === "DELETE" ? "delete" : "write"}`;
  if (/^\/statistics(\/|$)/.test(path)) return `${A}/statistics/read`;
  // Emulator-only (IoT Hub has no route for it: device messages go to Event Hubs or storage):
  // reading the kept device messages is authorized like reading the devices.
  if (/^\/emulator\/messages(\/|$)/.test(path)) return `${A}/devices/read`;
  return `${A}/unknown/action`;
}

export class HubRbac {
  readonly assignments = new Map<string, HubRoleAssignment>();

  constructor(readonly trusted: TrustedIssuer[] = []) {}

  /** Assigns an IoT Hub data-plane role (by GUID, ARM id or name) to a principal at the hub. */
  put(id: string, principalId: string, roleDefinitionId: string): HubRoleAssignment {
    const role = findRole(roleDefinitionId);
    if (!role?.dataActions.every((a) => a.startsWith(`${A}/`)))
      throw new HubError(
        "ArgumentInvalid",
        `'${roleDefinitionId.slice(0, 120)}' is not an IoT Hub data role`,
      );
    if (!/^[0-9a-f-]{36}$/i.test(principalId))
      throw new HubError("ArgumentInvalid", "principalId must be a GUID");
    const a = { id, principalId: principalId.toLowerCase(), roleDefinitionId: role.id, roleName: role.name };
    this.assignments.set(id, a);
    return a;
  }

  delete(id: string): boolean {
    return this.assignments.delete(id);
  }

  /** Throws `IotHubUnauthorizedAccess` unless the token's principal may do `action`. */
  authorize(token: string, action: string): void {
    if (this.trusted.length === 0)
      throw new HubError(
        "IotHubUnauthorizedAccess",
        "Microsoft Entra ID tokens are not accepted by this hub",
      );
    let oid: string;
    try {
      oid = verifyJwt(token, { trusted: this.trusted, audiences: [AUDIENCES.iotHub] }).oid.toLowerCase();
    } catch (err) {
      throw new HubError(
        "IotHubUnauthorizedAccess",
        `invalid Microsoft Entra ID token: ${(err as Error).message}`,
      );
    }
    for (const a of this.assignments.values()) {
      if (a.principalId !== oid) continue;
      const role = findRole(a.roleDefinitionId);
      if (role && actionAllowed(role.dataActions, action)) return;
    }
    throw new HubError(
      "IotHubUnauthorizedAccess",
      `principal ${oid} is not authorized for ${action}: no role assignment grants it`,
    );
  }
}
