/**
 * Picks the relay admin implementation from the environment:
 * - Azure: `RELAY_SUBSCRIPTION_ID`, `RELAY_RESOURCE_GROUP`, `RELAY_NAMESPACE` (credentials from
 *   `DefaultAzureCredential`: managed identity in Functions, `az login` on a laptop).
 * - Emulator: `RELAY_ENDPOINT` (`sb://127.0.0.1:<port>`), `RELAY_MANAGE_KEY_NAME`,
 *   `RELAY_MANAGE_KEY`, optional `RELAY_CA_FILE` (its TLS CA) and `RELAY_TLS=1`.
 */
import { readFileSync } from "node:fs";
import { RelayFleetError } from "../../../../lib/errors.ts";
import { createArmRelayAdmin } from "./arm.ts";
import { createEmulatorRelayAdmin } from "./emulator.ts";
import type { RelayAdmin } from "./types.ts";

export * from "./arm.ts";
export * from "./emulator.ts";
export * from "./types.ts";

/**
 * The relay namespaces the environment describes, in order: with ARM, each of `RELAY_NAMESPACES`
 * (comma-separated; default `RELAY_NAMESPACE` alone) in the same subscription and resource group;
 * otherwise the one namespace `relayAdminFromEnv` makes.
 */
export async function relayAdminsFromEnv(env: NodeJS.ProcessEnv = process.env): Promise<RelayAdmin[]> {
  const names = (env.RELAY_NAMESPACES ?? "")
    .split(",")
    .map((n) => n.trim())
    .filter(Boolean);
  if (names.length === 0 || !env.RELAY_SUBSCRIPTION_ID || !env.RELAY_RESOURCE_GROUP)
    return [await relayAdminFromEnv(env)];
  const admins: RelayAdmin[] = [];
  for (const name of new Set(names)) admins.push(await relayAdminFromEnv({ ...env, RELAY_NAMESPACE: name }));
  return admins;
}

/** Creates the relay admin the environment describes; throws one clear sentence when it describes none. */
export async function relayAdminFromEnv(env: NodeJS.ProcessEnv = process.env): Promise<RelayAdmin> {
  if (env.RELAY_SUBSCRIPTION_ID && env.RELAY_RESOURCE_GROUP && env.RELAY_NAMESPACE) {
    // Loaded lazily: the identity and ARM packages are heavy and unused locally.
    const [{ RelayAPI }, { DefaultAzureCredential }] = await Promise.all([
      import("@azure/arm-relay"),
      import("@azure/identity"),
    ]);
    const client = new RelayAPI(new DefaultAzureCredential(), env.RELAY_SUBSCRIPTION_ID);
    return createArmRelayAdmin({
      resourceGroup: env.RELAY_RESOURCE_GROUP,
      namespace: env.RELAY_NAMESPACE,
      hybridConnections: client.hybridConnections,
    });
  }
  if (env.RELAY_ENDPOINT && env.RELAY_MANAGE_KEY_NAME && env.RELAY_MANAGE_KEY) {
    return createEmulatorRelayAdmin({
      endpoint: env.RELAY_ENDPOINT,
      manageKeyName: env.RELAY_MANAGE_KEY_NAME,
      manageKey: env.RELAY_MANAGE_KEY,
      tls: env.RELAY_TLS === "1" || env.RELAY_CA_FILE !== undefined,
      ...(env.RELAY_CA_FILE ? { ca: readFileSync(env.RELAY_CA_FILE) } : {}),
    });
  }
  if (env.RELAY_ENDPOINT && env.IDENTITY_ENDPOINT) {
    // The emulator with the app's managed identity (Azure Relay Owner), no Manage key.
    const { ManagedIdentityCredential } = await import("@azure/identity");
    const credential = new ManagedIdentityCredential(
      env.AZURE_CLIENT_ID ? { clientId: env.AZURE_CLIENT_ID } : undefined,
    );
    return createEmulatorRelayAdmin({
      endpoint: env.RELAY_ENDPOINT,
      bearerToken: async () => (await credential.getToken("https://relay.azure.net/.default")).token,
      tls: env.RELAY_TLS === "1" || env.RELAY_CA_FILE !== undefined,
      ...(env.RELAY_CA_FILE ? { ca: readFileSync(env.RELAY_CA_FILE) } : {}),
    });
  }
  throw new RelayFleetError(
    "RF_ERR_ROLLOUT_CONFIG",
    "No relay is configured: set RELAY_SUBSCRIPTION_ID, RELAY_RESOURCE_GROUP and RELAY_NAMESPACE for Azure, or RELAY_ENDPOINT, RELAY_MANAGE_KEY_NAME and RELAY_MANAGE_KEY for the emulator.",
  );
}
