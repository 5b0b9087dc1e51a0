/**
 * The template configures every part the way its code reads configuration: the Functions app's
 * settings cover every variable of the rollout's zod schema that a deployment sets, and the
 * gateways' environment every variable the gateway's schema requires. Both lists are derived from
 * the schemas, so a new setting without a template entry fails here.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { describeSettings, loadFunctionsAppSettings } from "../../cloud/functions/src/settings.ts";
import { gatewayEnvSchema, loadConfig } from "../../cloud/gateway/src/config.ts";
import {
  Deferred,
  evaluateValue,
  findResource,
  loadTemplate,
  type Resource,
} from "../helpers/arm-template.ts";

const template = loadTemplate();
const ctx = {
  template,
  parameters: {
    gatewayImage: "registry.invalid/relay-fleet-gateway:1",
    adminSshPublicKey: "ssh-ed25519 AAAA test",
  },
};
const KEY_VAULT_REFERENCE =
  /^@Microsoft\.KeyVault\((VaultName=[^;]+;SecretName=[^;)]+|SecretUri=https:\/\/[^)]+)\)$/;

/** Settings the Functions host itself reads (not the rollout's code). */
const HOST_SETTINGS = new Set([
  "AzureWebJobsStorage__accountName",
  "APPLICATIONINSIGHTS_CONNECTION_STRING",
  "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
]);

function functionApp(): Resource {
  const app = template.resources.find((r) => r.type === "Microsoft.Web/sites");
  assert.ok(app, "the template has the Functions app");
  return app;
}

function appSettings(): Map<string, unknown> {
  const site = findResource<{
    properties: { siteConfig: { appSettings: Array<{ name: string; value: unknown }> } };
  }>(template, "Microsoft.Web/sites");
  const list = site.properties.siteConfig.appSettings;
  const names = list.map((s) => s.name);
  assert.equal(new Set(names).size, names.length, "no app setting twice");
  return new Map(list.map((s) => [s.name, evaluateValue(s.value, ctx)]));
}

test("the Functions app sets every variable of the rollout's schema a deployment sets, and nothing unknown", () => {
  const settings = appSettings();
  const documented = describeSettings();
  for (const s of documented) {
    if (s.deploy === "local") assert.ok(!settings.has(s.name), `${s.name} is local only: not an app setting`);
    else assert.ok(settings.has(s.name), `${s.name} (${s.description}) is an app setting`);
    if (s.deploy === "secret")
      assert.match(String(settings.get(s.name)), KEY_VAULT_REFERENCE, `${s.name} is a Key Vault reference`);
  }
  const known = new Set(documented.map((s) => s.name));
  for (const name of settings.keys())
    assert.ok(
      known.has(name) || HOST_SETTINGS.has(name),
      `app setting ${name} is read by the code or the host`,
    );
});

test("the app settings, as deployed, pass the Functions app's own validation", () => {
  const env: Record<string, string> = {};
  for (const [name, value] of appSettings()) {
    if (value instanceof Deferred) continue; // resolved by Azure at deployment
    // Key Vault references resolve to the secret's value; any well-formed value stands in.
    env[name] = KEY_VAULT_REFERENCE.test(String(value))
      ? "HostName=h.azure-devices.net;SharedAccessKeyName=k;SharedAccessKey=a2V5"
      : String(value);
  }
  const parsed = loadFunctionsAppSettings(env);
  assert.equal(parsed.RECONCILE_SCHEDULE, "0 */5 * * * *");
  assert.deepEqual(parsed.RELAY_PORT_RANGES, [{ from: 61000, to: 61019 }]);
  assert.equal(parsed.RELAY_NAMESPACE, String(evaluateValue("[variables('relayNamespaceName')]", ctx)));
  assert.equal(parsed.LEDGER_TABLE, String(evaluateValue("[variables('ledgerTable')]", ctx)));
  // The old Send key outlives a rotation by more than two gateway ledger reloads.
  const gateway = evaluateValue("[variables('gatewayEnvironment')]", ctx) as Record<string, string>;
  const reload = Number(gateway.LEDGER_RELOAD_INTERVAL_MS);
  assert.ok(reload > 0);
  assert.ok((parsed.ROTATE_SEND_GRACE_MS ?? 0) > 2 * reload, "send-key grace > 2 x ledger reload");
});

test("the Functions app runs Linux, a supported Node.js LTS, with a system-assigned identity", () => {
  const site = functionApp() as Resource & {
    kind: string;
    identity: { type: string };
    properties: { functionAppConfig: { runtime: { name: string; version: string } } };
  };
  assert.match(site.kind, /linux/);
  assert.equal(site.identity.type, "SystemAssigned");
  assert.equal(site.properties.functionAppConfig.runtime.name, "node");
  assert.ok(["22", "24"].includes(site.properties.functionAppConfig.runtime.version), "Node 22 or 24");
});

test("the gateways' environment covers every variable the gateway requires, and only known ones", () => {
  const environment = evaluateValue("[variables('gatewayEnvironment')]", ctx) as Record<string, string>;
  const shape = gatewayEnvSchema.shape as Record<string, { safeParse(v: unknown): { success: boolean } }>;
  const required = Object.keys(shape).filter((name) => !shape[name]?.safeParse(undefined).success);
  for (const name of required) assert.ok(name in environment, `gateway needs ${name}`);
  for (const name of Object.keys(environment)) assert.ok(name in shape, `${name} is read by the gateway`);
  // Identities, no stored key: the ledger by its table URL (Table Data Reader), the relay by Entra ID.
  assert.equal(environment.LEDGER_CONNECTION_STRING, undefined);
  assert.equal(environment.GATEWAY_RELAY_AUTH, "entra");
  // As deployed, the gateway's own validation (one ledger variable or the other) accepts it.
  const config = loadConfig(environment);
  assert.equal(config.LEDGER_TABLE, String(evaluateValue("[variables('ledgerTable')]", ctx)));
  const storage = String(evaluateValue("[variables('storageAccountName')]", ctx));
  assert.equal(config.LEDGER_TABLE_URL, `https://${storage}.table.core.windows.net`);
});

test("the cloud-init the gateways boot with writes that environment and runs the image with it", () => {
  const cloudInit = String(evaluateValue("[variables('cloudInit')]", ctx));
  assert.match(cloudInit, /^#cloud-config\n/);
  const envFile = /path: \/etc\/relay-fleet\/gateway\.env\n\s+encoding: b64\n\s+content: (\S+)/.exec(
    cloudInit,
  );
  assert.ok(envFile, "the env file is written");
  const lines = Buffer.from(envFile[1] as string, "base64")
    .toString("utf8")
    .trim()
    .split("\n");
  const environment = evaluateValue("[variables('gatewayEnvironment')]", ctx) as Record<string, string>;
  assert.deepEqual(
    Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)])),
    environment,
  );
  assert.match(
    cloudInit,
    /docker run --rm --name relay-fleet-gateway --network host --env-file \/etc\/relay-fleet\/gateway\.env registry\.invalid\/relay-fleet-gateway:1\n/,
  );
  assert.doesNotMatch(cloudInit, /\{\d\}|\{\{|\}\}/, "every placeholder is filled and every escape undone");
  // The scale set boots with exactly this cloud-init.
  const vmss = findResource<{
    properties: { virtualMachineProfile: { osProfile: { customData: string } } };
  }>(template, "Microsoft.Compute/virtualMachineScaleSets");
  const customData = String(evaluateValue(vmss.properties.virtualMachineProfile.osProfile.customData, ctx));
  assert.equal(Buffer.from(customData, "base64").toString("utf8"), cloudInit);
});
