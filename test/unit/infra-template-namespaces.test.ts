/**
 * The relay namespace count (ADR 0025): the template creates `relayNamespaceCount` namespaces, gives
 * the rollout Azure Relay Owner and the gateways Azure Relay Sender on every one, and lists them in
 * order in RELAY_NAMESPACES; with one namespace it keeps the names a deployment made before the
 * parameter existed, so redeploying renames nothing.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { loadFunctionsAppSettings } from "../../cloud/functions/src/settings.ts";
import {
  Deferred,
  deployedResources,
  type EvalContext,
  evaluate,
  evaluateValue,
  findResource,
  loadTemplate,
} from "../helpers/arm-template.ts";

const template = loadTemplate();
const contextWith = (relayNamespaceCount?: number): EvalContext => ({
  template,
  parameters: {
    gatewayImage: "registry.invalid/relay-fleet-gateway:1",
    adminSshPublicKey: "ssh-ed25519 AAAA test",
    ...(relayNamespaceCount === undefined ? {} : { relayNamespaceCount }),
  },
});
const ROLES = {
  owner: "2787bf04-f1f5-4bfe-8383-c8a24483ee38",
  sender: "26baccc8-eea7-41f1-98f4-1762cc7f685d",
};

function evaluated(ctx: EvalContext) {
  const deployed = deployedResources(ctx);
  const namespaces = deployed
    .filter((d) => d.resource.type === "Microsoft.Relay/namespaces")
    .map((d) => String(evaluateValue(d.resource.name, d.ctx)));
  const relayAssignments = deployed
    .filter((d) => d.resource.type === "Microsoft.Authorization/roleAssignments")
    .map((d) => ({
      name: String(evaluateValue(d.resource.name, d.ctx)),
      scope: String(evaluateValue(d.resource.scope, d.ctx)),
      role: String(
        evaluateValue((d.resource.properties as { roleDefinitionId: string }).roleDefinitionId, d.ctx),
      ),
      principal: String((d.resource.properties as { principalId: string }).principalId),
    }))
    .filter((a) => a.scope.startsWith("Microsoft.Relay/namespaces/"));
  const site = findResource<{
    properties: { siteConfig: { appSettings: Array<{ name: string; value: unknown }> } };
  }>(template, "Microsoft.Web/sites");
  const settings = Object.fromEntries(
    site.properties.siteConfig.appSettings.map((s) => [s.name, evaluateValue(s.value, ctx)]),
  );
  const outputs = Object.fromEntries(
    Object.entries(template.outputs).map(([k, o]) => [k, evaluateValue(o.value, ctx)]),
  );
  return { namespaces, relayAssignments, settings, outputs };
}

const holders = (assignments: Array<{ scope: string; role: string; principal: string }>, role: string) =>
  assignments
    .filter((a) => a.role.endsWith(role))
    .map((a) => ({
      namespace: a.scope.split("/").pop(),
      who: a.principal.includes("Microsoft.Web/sites")
        ? "rollout"
        : a.principal.includes("virtualMachineScaleSets")
          ? "gateways"
          : "other",
    }));

test("relayNamespaceCount 3: three namespaces, Owner and Sender on each, RELAY_NAMESPACES in order", () => {
  const ctx = contextWith(3);
  const { namespaces, relayAssignments, settings, outputs } = evaluated(ctx);
  assert.equal(namespaces.length, 3);
  assert.equal(new Set(namespaces).size, 3, "distinct names");
  for (const n of namespaces)
    assert.match(n, /^[a-z][a-z0-9-]{4,48}[a-z0-9]$/, `${n} fits Azure Relay's name rule`);
  assert.equal(relayAssignments.length, 6, "3 + 3 role assignments on the namespaces");
  assert.deepEqual(
    holders(relayAssignments, ROLES.owner),
    namespaces.map((namespace) => ({ namespace, who: "rollout" })),
  );
  assert.deepEqual(
    holders(relayAssignments, ROLES.sender),
    namespaces.map((namespace) => ({ namespace, who: "gateways" })),
  );
  assert.equal(new Set(relayAssignments.map((a) => a.name)).size, 6, "one name per assignment");
  assert.equal(settings.RELAY_NAMESPACES, namespaces.join(","));
  assert.equal(settings.RELAY_NAMESPACE, namespaces[0]);
  assert.deepEqual(outputs.relayNamespaces, namespaces);
  assert.equal(outputs.relayNamespace, namespaces[0]);
  // The settings, as deployed, pass the Functions app's validation and name the three in order.
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(settings))
    if (!(v instanceof Deferred) && !String(v).startsWith("@Microsoft.KeyVault")) env[k] = String(v);
  env.IOTHUB_CONNECTION_STRING = "HostName=h.azure-devices.net;SharedAccessKeyName=k;SharedAccessKey=a2V5";
  const parsed = loadFunctionsAppSettings(env);
  assert.deepEqual(parsed.RELAY_NAMESPACES?.split(","), namespaces);
});

test("relayNamespaceCount 1 (the default) keeps the names of a one-namespace deployment", () => {
  const ctx = contextWith();
  const { namespaces, relayAssignments, settings, outputs } = evaluated(ctx);
  // The names the template gave before it had the parameter.
  const before = String(evaluate("[format('{0}-relay-{1}', variables('prefix'), variables('suffix'))]", ctx));
  assert.deepEqual(namespaces, [before]);
  assert.deepEqual(
    relayAssignments.map((a) => a.name).sort(),
    [
      String(
        evaluate(
          "[guid(resourceId('Microsoft.Relay/namespaces', variables('relayNamespaceName')), variables('functionAppName'), variables('roles').AzureRelayOwner)]",
          ctx,
        ),
      ),
      String(
        evaluate(
          "[guid(resourceId('Microsoft.Relay/namespaces', variables('relayNamespaceName')), variables('scaleSetName'), variables('roles').AzureRelaySender)]",
          ctx,
        ),
      ),
    ].sort(),
  );
  assert.equal(settings.RELAY_NAMESPACES, before);
  assert.equal(settings.RELAY_NAMESPACE, before);
  assert.equal(outputs.relayNamespace, before);
  // Same for a count of 2: the first namespace stays, the second is new.
  assert.equal(evaluated(contextWith(2)).namespaces[0], before);
});

test("the count is bounded by the parameter's limits", () => {
  const p = template.parameters.relayNamespaceCount as unknown as {
    minValue: number;
    maxValue: number;
    defaultValue: number;
  };
  assert.equal(p.defaultValue, 1);
  assert.equal(p.minValue, 1);
  assert.ok(
    p.maxValue >= 46 && p.maxValue <= 800,
    "room for 10,000 single-device sites, within ARM's copy limit",
  );
  const { namespaces } = evaluated(contextWith(p.maxValue));
  assert.equal(new Set(namespaces).size, p.maxValue);
  for (const n of namespaces) assert.ok(n.length <= 50, `${n}: at most 50 characters`);
});
