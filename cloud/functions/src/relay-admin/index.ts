/**
 * Picks the relay admin implementation from the environment (read through the rollout's settings
 * schema, settings.ts):
 * - Azure: `RELAY_SUBSCRIPTION_ID`, `RELAY_RESOURCE_GROUP`, `RELAY_NAMESPACE` (credentials from
 *   `DefaultAzureCredential`: managed identity in Functions, `az login` on a laptop).
 * - Emulator: `RELAY_ENDPOINT` (`sb://127.0.0.1:<port>`), `RELAY_MANAGE_KEY_NAME`,
 *   `RELAY_MANAGE_KEY`, optional `RELAY_CA_FILE` (its TLS CA) and `RELAY_TLS=1`.
 */
import { readFileSync } from "node:fs";
import { RelayFleetError } from "../../../../lib/errors.ts";
import { loadRolloutSettings } from "../settings.ts";
import { createArmRelayAdmin } from "./arm.ts";
import { createEmulatorRelayAdmin } from "./emulator.ts";
import type { RelayAdmin } from "./types.ts";

export * from "./arm.ts";
export * from "./emulator.ts";
export * from "./types.ts";

/**
 * The relay namespaces the environment describes, in order: with ARM, each of `RELAY_NAMESPACES`
 * (comma-separated; default `RELAY_NAMESPACE` alone) in the same subscription and resource group;
 * with the relay emulator (one namespace a process), each entry is an emulator's URL in place of
 * `RELAY_ENDPOINT`, all with the same Manage key (the scale benchmark); otherwise the one
 * namespace `relayAdminFromEnv` makes.
 */
export async function relayAdminsFromEnv(env: NodeJS.ProcessEnv = process.env): Promise<RelayAdmin[]> {
  const s = loadRolloutSettings(env);
  const names = [
    ...new Set(
      (s.RELAY_NAMESPACES ?? "")
        .split(",")
        .map((n) => n.trim())
        .filter(Boolean),
    ),
  ];
  const arm = Boolean(s.RELAY_SUBSCRIPTION_ID && s.RELAY_RESOURCE_GROUP);
  const emulators = !arm && Boolean(s.RELAY_MANAGE_KEY_NAME && s.RELAY_MANAGE_KEY);
  if (names.length === 0 || (!arm && !emulators)) return [await relayAdminFromEnv(env)];
  const admins: RelayAdmin[] = [];
  for (const name of names)
    admins.push(
      await relayAdminFromEnv(arm ? { ...env, RELAY_NAMESPACE: name } : { ...env, RELAY_ENDPOINT: name }),
    );
  return admins;
}

/** Creates the relay admin the environment describes; throws one clear sentence when it describes none. */
export async function relayAdminFromEnv(env: NodeJS.ProcessEnv = process.env): Promise<RelayAdmin> {
  const s = loadRolloutSettings(env);
  const tls = s.RELAY_TLS || s.RELAY_CA_FILE !== undefined;
  const ca = s.RELAY_CA_FILE ? { ca: readFileSync(s.RELAY_CA_FILE) } : {};
  if (s.RELAY_SUBSCRIPTION_ID && s.RELAY_RESOURCE_GROUP && s.RELAY_NAMESPACE) {
    // Loaded lazily: the identity and ARM packages are heavy and unused locally.
    const [{ RelayAPI }, { DefaultAzureCredential }] = await Promise.all([
      import("@azure/arm-relay"),
      import("@azure/identity"),
    ]);
    const client = new RelayAPI(new DefaultAzureCredential(), s.RELAY_SUBSCRIPTION_ID);
    return createArmRelayAdmin({
      resourceGroup: s.RELAY_RESOURCE_GROUP,
      namespace: s.RELAY_NAMESPACE,
      hybridConnections: client.hybridConnections,
    });
  }
  if (s.RELAY_ENDPOINT && s.RELAY_MANAGE_KEY_NAME && s.RELAY_MANAGE_KEY) {
    return createEmulatorRelayAdmin({
      endpoint: s.RELAY_ENDPOINT,
      manageKeyName: s.RELAY_MANAGE_KEY_NAME,
      manageKey: s.RELAY_MANAGE_KEY,
      tls,
      ...ca,
    });
  }
  if (s.RELAY_ENDPOINT && s.IDENTITY_ENDPOINT) {
    // The emulator with the app's managed identity (Azure Relay Owner), no Manage key.
    const { ManagedIdentityCredential } = await import("@azure/identity");
    const credential = new ManagedIdentityCredential(
      s.AZURE_CLIENT_ID ? { clientId: s.AZURE_CLIENT_ID } : undefined,
    );
    return createEmulatorRelayAdmin({
      endpoint: s.RELAY_ENDPOINT,
      bearerToken: async () => (await credential.getToken("https://relay.azure.net/.default")).token,
      tls,
      ...ca,
    });
  }
  throw new RelayFleetError(
    "RF_ERR_ROLLOUT_CONFIG",
    "No relay is configured: set RELAY_SUBSCRIPTION_ID, RELAY_RESOURCE_GROUP and RELAY_NAMESPACE for Azure, or RELAY_ENDPOINT, RELAY_MANAGE_KEY_NAME and RELAY_MANAGE_KEY for the emulator.",
  );
}
