/**
 * Least privilege and no secrets: every role assignment uses a documented built-in role
 * definition ID, is scoped to one resource the template creates, and the set of assignments is
 * exactly the one the parts need; no key, connection string or password in an output, a
 * parameter default or a plain-text setting.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  callsIn,
  Deferred,
  deployedResources,
  type EvalContext,
  evaluateValue,
  expressionsIn,
  findResource,
  loadTemplate,
  parseExpression,
  type Resource,
  resourcePath,
} from "../helpers/arm-template.ts";

const template = loadTemplate();
const ctx = {
  template,
  parameters: {
    gatewayImage: "registry.invalid/relay-fleet-gateway:1",
    adminSshPublicKey: "ssh-ed25519 AAAA test",
  },
};

/**
 * Built-in role definition IDs as Azure documents them ("Azure built-in roles",
 * learn.microsoft.com/azure/role-based-access-control/built-in-roles).
 */
const BUILT_IN_ROLES: Record<string, string> = {
  "2787bf04-f1f5-4bfe-8383-c8a24483ee38": "Azure Relay Owner",
  "26baccc8-eea7-41f1-98f4-1762cc7f685d": "Azure Relay Sender",
  "4ea46cd5-c1b2-4a8e-910b-273211f9ce47": "IoT Hub Registry Contributor",
  "494bdba2-168f-4f31-a0a1-191d2f7c028c": "IoT Hub Twin Contributor",
  "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
  "76199698-9eea-4c19-bc75-cec21354c6b6": "Storage Table Data Reader",
  "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
  "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
  "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
};

/** Who gets what where: the whole list, so a new or wider assignment fails until reviewed. */
const EXPECTED = [
  "rollout | Azure Relay Owner | Microsoft.Relay/namespaces",
  "rollout | IoT Hub Registry Contributor | Microsoft.Devices/IotHubs",
  "rollout | IoT Hub Twin Contributor | Microsoft.Devices/IotHubs",
  "rollout | Storage Table Data Contributor | Microsoft.Storage/storageAccounts/tableServices/tables",
  "rollout | Storage Blob Data Owner | Microsoft.Storage/storageAccounts",
  "rollout | Monitoring Metrics Publisher | Microsoft.Insights/components",
  "gateways | Storage Table Data Reader | Microsoft.Storage/storageAccounts/tableServices/tables",
  "gateways | Storage Table Data Contributor | Microsoft.Storage/storageAccounts/tableServices/tables",
  "gateways | Azure Relay Sender | Microsoft.Relay/namespaces",
  "hub-routing | Storage Blob Data Contributor | Microsoft.Storage/storageAccounts/blobServices/containers",
].sort();

type RoleAssignment = Resource & {
  scope?: string;
  properties: { roleDefinitionId: string; principalId: string; principalType: string };
};
const assignments = deployedResources(ctx).filter(
  (d) => d.resource.type === "Microsoft.Authorization/roleAssignments",
) as Array<{ resource: RoleAssignment; ctx: EvalContext }>;

test("the template's role table is the documented built-in IDs", () => {
  const roles = evaluateValue("[variables('roles')]", ctx) as Record<string, string>;
  for (const [key, id] of Object.entries(roles)) {
    assert.ok(id in BUILT_IN_ROLES, `${key}: ${id} is a documented built-in role`);
    assert.equal(key, (BUILT_IN_ROLES[id] as string).replaceAll(" ", ""), `${id} is ${BUILT_IN_ROLES[id]}`);
  }
});

test("every role assignment is a built-in role on one resource the template creates, none wider", () => {
  const declared = new Map(
    deployedResources(ctx).map((d) => [resourcePath(d.resource, d.ctx), d.resource.type]),
  );
  const seen: string[] = [];
  for (const { resource: a, ctx } of assignments) {
    assert.ok(a.scope, "scoped to a resource, never the group or the subscription");
    const scope = String(evaluateValue(a.scope, ctx));
    assert.ok(declared.has(scope), `${scope} is a resource of this template`);
    const role = String(evaluateValue(a.properties.roleDefinitionId, ctx));
    const m =
      /^\/subscriptions\/[^/]+\/providers\/Microsoft\.Authorization\/roleDefinitions\/([0-9a-f-]{36})$/.exec(
        role,
      );
    assert.ok(m, `${role} is a role definition ID`);
    const name = BUILT_IN_ROLES[m[1] as string];
    assert.ok(name, `${m[1]} is a documented built-in role`);
    assert.equal(a.properties.principalType, "ServicePrincipal");
    const principal = a.properties.principalId;
    const who = principal.includes("Microsoft.Web/sites")
      ? "rollout"
      : principal.includes("Microsoft.Compute/virtualMachineScaleSets")
        ? "gateways"
        : principal.includes("Microsoft.ManagedIdentity/userAssignedIdentities")
          ? "hub-routing"
          : "unknown";
    // A managed identity's principal: a system-assigned one through the resource, or a
    // user-assigned identity's own principalId.
    assert.match(
      principal,
      /('full'\)\.identity\.principalId|userAssignedIdentities', variables\('[^']+'\)\), '[\d-]+'\)\.principalId)\]$/,
      "a managed identity's principal",
    );
    seen.push(`${who} | ${name} | ${declared.get(scope)}`);
    // Deterministic names: redeploying updates instead of duplicating.
    assert.match(String(evaluateValue(a.name, ctx)), /^[0-9a-f-]{36}$/);
  }
  assert.deepEqual(seen.sort(), EXPECTED);
  const names = assignments.map((d) => String(evaluateValue(d.resource.name, d.ctx)));
  assert.equal(new Set(names).size, names.length, "one name per assignment");
});

const SECRETISH = /(connection.?string|password|secret|key|token|sas)/i;
const SECRET_OUTPUT =
  /(connection.?string|password|secret|accesskey|accountkey|primarykey|sharedaccess|token)/i;

test("no output carries a secret, and none calls a list* function", () => {
  for (const [name, output] of Object.entries(template.outputs)) {
    assert.notEqual(output.type.toLowerCase(), "securestring");
    assert.notEqual(output.type.toLowerCase(), "secureobject");
    assert.doesNotMatch(name, SECRET_OUTPUT, `output ${name}`);
    for (const { source } of expressionsIn(output.value))
      for (const call of callsIn(parseExpression(source)))
        assert.doesNotMatch(call.name, /^list/i, `output ${name}`);
  }
});

test("no parameter default holds a key, password or connection string", () => {
  for (const [name, p] of Object.entries(template.parameters)) {
    const text = JSON.stringify(p.defaultValue ?? "");
    assert.doesNotMatch(text, /AccountKey=|SharedAccessKey=|Password=|-----BEGIN/i, `parameter ${name}`);
    if (/secure/i.test(p.type))
      assert.equal(p.defaultValue, undefined, `secure parameter ${name} has no default`);
  }
});

test("list* results only go into Key Vault secrets, never into settings, custom data or other resources", () => {
  for (const r of template.resources)
    for (const { path, source } of expressionsIn(r)) {
      const lists = [...callsIn(parseExpression(source))].filter((c) => /^list/i.test(c.name));
      if (lists.length === 0) continue;
      assert.equal(r.type, "Microsoft.KeyVault/vaults/secrets", `${r.type} ${path} calls ${lists[0]?.name}`);
      assert.equal(path, "$.properties.value");
    }
});

test("secret-looking app settings are Key Vault references (Application Insights' ingestion string excepted)", () => {
  const site = findResource<{
    properties: { siteConfig: { appSettings: Array<{ name: string; value: string }> } };
  }>(template, "Microsoft.Web/sites");
  for (const s of site.properties.siteConfig.appSettings) {
    const value = evaluateValue(s.value, ctx);
    if (s.name === "APPLICATIONINSIGHTS_CONNECTION_STRING") {
      // Not a credential here: the component takes Entra ID only (local auth off), see below.
      assert.ok(value instanceof Deferred);
      continue;
    }
    if (SECRETISH.test(s.name)) assert.match(String(value), /^@Microsoft\.KeyVault\(/, s.name);
    assert.doesNotMatch(String(value), /AccountKey=|SharedAccessKey=|Password=/i, s.name);
  }
  const insights = findResource<{
    properties: { DisableLocalAuth: boolean };
  }>(template, "Microsoft.Insights/components");
  assert.equal(insights.properties.DisableLocalAuth, true);
  const auth = site.properties.siteConfig.appSettings.find(
    (s) => s.name === "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
  );
  assert.equal(auth?.value, "Authorization=AAD");
});

test("the gateways' custom data holds no secret, and they log in by key only", () => {
  const cloudInit = String(evaluateValue("[variables('cloudInit')]", ctx));
  assert.doesNotMatch(cloudInit, /AccountKey=|SharedAccessKey=|Password=|<deferred/i);
  const environment = evaluateValue("[variables('gatewayEnvironment')]", ctx) as Record<string, string>;
  for (const name of Object.keys(environment)) assert.doesNotMatch(name, SECRETISH, `${name} in custom data`);
  const vmss = findResource<{
    properties: {
      virtualMachineProfile: {
        osProfile: { linuxConfiguration: { disablePasswordAuthentication: boolean } };
      };
    };
  }>(template, "Microsoft.Compute/virtualMachineScaleSets");
  assert.equal(
    vmss.properties.virtualMachineProfile.osProfile.linuxConfiguration.disablePasswordAuthentication,
    true,
  );
});

test("IoT Hub routes the relayListener modules' messages (audit records) to storage by identity, and keeps the built-in endpoint", () => {
  const hub = findResource<{
    identity: { type: string };
    properties: {
      routing: {
        endpoints: { storageContainers: Array<Record<string, unknown>> };
        routes: Array<{ condition: string; endpointNames: string[]; isEnabled: boolean }>;
        fallbackRoute: { endpointNames: string[]; isEnabled: boolean };
      };
    };
  }>(template, "Microsoft.Devices/IotHubs");
  const [endpoint] = hub.properties.routing.endpoints.storageContainers;
  assert.equal(endpoint?.authenticationType, "identityBased");
  assert.equal(endpoint?.connectionString, undefined, "no key in the endpoint");
  assert.equal(hub.identity.type, "UserAssigned");
  const route = hub.properties.routing.routes.find((r) => r.endpointNames.includes(String(endpoint?.name)));
  assert.equal(route?.condition, "$connectionModuleId = 'relayListener'");
  assert.equal(route?.isEnabled, true);
  assert.deepEqual(hub.properties.routing.fallbackRoute.endpointNames, ["events"]);
  assert.equal(hub.properties.routing.fallbackRoute.isEnabled, true);
  assert.equal(
    evaluateValue(endpoint?.containerName, ctx),
    evaluateValue(template.outputs.auditContainer?.value, ctx),
  );
});
