/**
 * The rollout with its managed identity only: built by `rolloutFromEnv` (the app's own settings
 * path) with no IoT Hub connection string and no relay Manage key, the unmodified
 * @azure/identity ManagedIdentityCredential against the local identity emulator. IoT Hub's
 * service API answers 401 until the identity holds IoT Hub Registry + Twin Contributor; then the
 * rollout onboards, maps and offboards a site. The ledger is reached by identity too
 * (LEDGER_TABLE_URL: Azurite over HTTPS with Entra ID tokens), with no storage key in the settings. With Entra ID for gateways no Send rule is created
 * and no ledger row (every row of the table read back) carries key material.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { TableClient } from "@azure/data-tables";
import { rolloutFromEnv } from "../../cloud/functions/src/config.ts";
import { ROLES } from "../../lib/entra/roles.ts";
import { startAzurite } from "../../sim/azurite.ts";
import { startIdentityEmulator } from "../../sim/identity-emulator/index.ts";
import { startIotHubEmulator } from "../../sim/iothub-emulator/index.ts";
import { startRelayEmulator } from "../../sim/relay-emulator/index.ts";

test("the rollout onboards, maps and offboards with its identity only; the ledger holds no key", {
  timeout: 120_000,
}, async (t) => {
  const idp = await startIdentityEmulator({ identities: ["rollout"] });
  t.after(() => idp.close());
  const [relay, hub, azurite] = await Promise.all([
    startRelayEmulator({ tls: true, trustedIssuers: [idp.trust] }),
    startIotHubEmulator({ trustedIssuers: [idp.trust], workloadPort: false }),
    startAzurite({ oauth: true }),
  ]);
  t.after(() => relay.close());
  t.after(() => hub.close());
  t.after(() => azurite.close());
  const principalId = idp.identity("rollout")!.principalId;
  // ARM's stand-in on the emulator: Azure Relay Owner on the namespace.
  relay.admin.putRoleAssignment("rollout-owner", { principalId, roleDefinitionId: ROLES.relayOwner.id });
  // This process is the Functions app: its managed identity comes from the environment.
  Object.assign(process.env, idp.envFor("rollout"));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    IOTHUB_HOST_NAME: hub.hostName,
    IOTHUB_REST_PORT: String(hub.httpsPort),
    IOTHUB_CA_FILE: hub.caFile,
    LEDGER_TABLE_URL: azurite.tableEndpoint,
    LEDGER_CA_FILE: azurite.caFile,
    RELAY_ENDPOINT: relay.endpoint,
    RELAY_CA_FILE: relay.caFile,
    RELAY_PORT_RANGES: "45000-45099",
    SITE_PROFILES: JSON.stringify({ default: { mappings: { web: { target: "127.0.0.1:8080" } } } }),
  };
  for (const name of [
    "IOTHUB_CONNECTION_STRING",
    "LEDGER_CONNECTION_STRING",
    "AzureWebJobsStorage",
    "RELAY_MANAGE_KEY",
    "RELAY_MANAGE_KEY_NAME",
    "ROLLOUT_RELAY_SEND_AUTH",
  ])
    delete env[name];

  // No IoT Hub role yet: the hub refuses the identity, and nothing is left half-made in the registry.
  const unauthorized = await rolloutFromEnv(env);
  await assert.rejects(unauthorized.createSite({ siteId: "plant-1" }), (err: { message?: string }) =>
    /401/.test(err.message ?? ""),
  );
  assert.equal(hub.hub.store.devices.has("plant-1"), false);

  hub.rbac.put("rollout-registry", principalId, ROLES.iotHubRegistryContributor.name);
  hub.rbac.put("rollout-twins", principalId, ROLES.iotHubTwinContributor.id);
  const rollout = await rolloutFromEnv(env);
  const created = await rollout.createSite({ siteId: "plant-1" });
  assert.equal(created.created, true);
  assert.equal((await rollout.deps.hub.getDevice("plant-1"))?.iotEdge, true);
  const mapped = await rollout.putMapping("plant-1", "ssh", { target: "127.0.0.1:22" });
  assert.deepEqual(Object.keys(mapped.mappings).sort(), ["ssh", "web"]);

  // Only the Listen rule exists on the site's hybrid connection (gateways use Azure Relay Sender).
  assert.ok(relay.admin.getAuthorizationRule("site-plant-1", "listen"));
  assert.equal(relay.admin.getAuthorizationRule("site-plant-1", "send"), undefined);
  // Every row of the ledger table, every property: no key material.
  const listenKey = relay.admin.getAuthorizationRule("site-plant-1", "listen")!.primaryKey;
  // Read back with the account key (the test's own view of the storage, not the rollout's).
  const table = TableClient.fromConnectionString(azurite.connectionString, "portledger", {
    tlsOptions: { ca: readFileSync(azurite.caFile ?? "", "utf8") },
  });
  let rows = 0;
  for await (const entity of table.listEntities<Record<string, unknown>>()) {
    rows++;
    for (const [name, value] of Object.entries(entity)) {
      assert.ok(
        !/key$|sas|secret|signature|password|token/i.test(name) ||
          name === "rowKey" ||
          name === "partitionKey",
        `property ${name}`,
      );
      const text = typeof value === "string" ? value : JSON.stringify(value ?? "");
      assert.ok(!text.includes(listenKey), `no Listen key in ${name}`);
      assert.ok(!/SharedAccess|sig=|eyJ[A-Za-z0-9_-]{10,}\./.test(text), `no SAS or token in ${name}`);
    }
  }
  assert.ok(rows >= 3, "the site row and its two route rows were read");

  const removed = await rollout.removeSite("plant-1", { deleteDevice: true });
  assert.ok(removed);
  assert.equal(hub.hub.store.devices.has("plant-1"), false);
  assert.equal(relay.admin.getHybridConnection("site-plant-1"), undefined);
  assert.equal((await rollout.listSites()).length, 0);
});
