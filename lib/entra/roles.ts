/**
 * The Azure built-in roles Relay Fleet's identities hold, with their fixed role definition ids
 * and data actions (Azure RBAC built-in roles reference). One table for the infrastructure
 * template, the config schemas that name them and the emulators that enforce them.
 *
 * | identity | role | scope |
 * |---|---|---|
 * | gateway | Azure Relay Sender | relay namespace (or each site's hybrid connection) |
 * | gateway | Storage Table Data Reader | the ledger's storage account (or table) |
 * | rollout | IoT Hub Registry Contributor + IoT Hub Twin Contributor | the IoT hub |
 * | rollout | Storage Table Data Contributor | the ledger's storage account (or table) |
 * | rollout | Contributor (ARM) | the relay namespace, to create hybrid connections and Listen rules |
 */

export interface BuiltInRole {
  name: string;
  /** GUID of the role definition (the same in every tenant). */
  id: string;
  /** Data actions, `*` matching any run of characters. */
  dataActions: readonly string[];
}

export const ROLES = {
  relayOwner: {
    name: "Azure Relay Owner",
    id: "2787bf04-f1f5-4bfe-8383-c8a24483ee38",
    dataActions: ["Microsoft.Relay/*"],
  },
  relayListener: {
    name: "Azure Relay Listener",
    id: "26e0b698-aa6d-4085-9386-aadae190014d",
    dataActions: ["Microsoft.Relay/*/listen/action"],
  },
  relaySender: {
    name: "Azure Relay Sender",
    id: "26baccc8-eea7-41f1-98f4-1762cc7f685d",
    dataActions: ["Microsoft.Relay/*/send/action"],
  },
  iotHubDataContributor: {
    name: "IoT Hub Data Contributor",
    id: "4fc6c259-987e-4a07-842e-c321cc9d413f",
    dataActions: ["Microsoft.Devices/IotHubs/*"],
  },
  iotHubDataReader: {
    name: "IoT Hub Data Reader",
    id: "b447c946-2db7-41ec-983d-d8bf3b1c77e3",
    dataActions: [
      "Microsoft.Devices/IotHubs/*/read",
      "Microsoft.Devices/IotHubs/fileUpload/notifications/action",
    ],
  },
  iotHubRegistryContributor: {
    name: "IoT Hub Registry Contributor",
    id: "4ea46cd5-c1b2-4a8e-910b-273211f9ce47",
    dataActions: ["Microsoft.Devices/IotHubs/devices/*"],
  },
  iotHubTwinContributor: {
    name: "IoT Hub Twin Contributor",
    id: "494bdba2-168f-4f31-a0a1-191d2f7c028c",
    dataActions: ["Microsoft.Devices/IotHubs/twins/*"],
  },
  storageTableDataReader: {
    name: "Storage Table Data Reader",
    id: "76199698-9eea-4c19-bc75-cec21354c6b6",
    dataActions: ["Microsoft.Storage/storageAccounts/tableServices/tables/entities/read"],
  },
  storageTableDataContributor: {
    name: "Storage Table Data Contributor",
    id: "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    dataActions: ["Microsoft.Storage/storageAccounts/tableServices/tables/entities/*"],
  },
} as const satisfies Record<string, BuiltInRole>;

export type RoleKey = keyof typeof ROLES;

/** Token audiences (Entra resource ids) of the data planes. */
export const AUDIENCES = {
  relay: "https://relay.azure.net",
  iotHub: "https://iothubs.azure.net",
  storage: "https://storage.azure.com",
  arm: "https://management.azure.com",
} as const;

/**
 * The role a role definition reference names: a bare GUID, an ARM id ending in
 * `/roleDefinitions/{guid}`, or the role's display name. undefined when it is none of ours.
 */
export function findRole(reference: string): BuiltInRole | undefined {
  const ref = reference.trim();
  const guid = /([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i
    .exec(ref)?.[1]
    ?.toLowerCase();
  return Object.values(ROLES).find(
    (r) => (guid !== undefined && r.id === guid) || r.name.toLowerCase() === ref.toLowerCase(),
  );
}

/** True when `action` matches one of `patterns` (`*` = any characters, case-insensitive). */
export function actionAllowed(patterns: readonly string[], action: string): boolean {
  return patterns.some((p) => {
    const re = new RegExp(
      `^${p
        .split("*")
        .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
        .join(".*")}$`,
      "i",
    );
    return re.test(action);
  });
}
