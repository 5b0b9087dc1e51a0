/**
 * infra/main.json: every expression parses with the functions the evaluator knows, every
 * parameter is used, every variable referenced, every reference resolves, and what the template
 * names and depends on exists in it.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  callsIn,
  deployedResources,
  evaluateValue,
  expressionsIn,
  loadTemplate,
  parseExpression,
  resourcePath,
} from "../helpers/arm-template.ts";

const template = loadTemplate();
const all = [...expressionsIn(template)];

/** Literal first arguments of every call named `name`, over the whole template. */
function literalArgs(name: string): string[] {
  const out: string[] = [];
  for (const { source } of all)
    for (const call of callsIn(parseExpression(source))) {
      const first = call.args[0];
      if (call.name === name && first?.kind === "string") out.push(first.value);
    }
  return out;
}

test("every expression parses, with known functions and argument counts", () => {
  assert.ok(all.length > 100, `the template has expressions (${all.length})`);
  for (const { path, source } of all) assert.doesNotThrow(() => parseExpression(source), path);
  // The parser is strict: it refuses what ARM refuses.
  for (const bad of ["[concat('a'", "[unknownFn('x')]", "[format()]", "[parameters('a') junk]", "['open]"])
    assert.throws(() => parseExpression(bad), bad);
});

test("parameters(), variables() and lambdaVariables() only name what exists, with literal names", () => {
  for (const { path, source } of all)
    for (const call of callsIn(parseExpression(source))) {
      if (!["parameters", "variables", "lambdaVariables"].includes(call.name)) continue;
      const name = call.args[0];
      assert.equal(name?.kind, "string", `${path}: ${call.name}() takes a literal name`);
      if (call.name === "parameters") assert.ok(name.value in template.parameters, `${path}: ${name.value}`);
      if (call.name === "variables") assert.ok(name.value in template.variables, `${path}: ${name.value}`);
    }
  // lambdaVariables() only inside the lambda that declares the name.
  for (const { path, source } of all) {
    const walk = (e: ReturnType<typeof parseExpression>, scope: Set<string>) => {
      for (const call of e.kind === "call" ? [e] : [])
        if (call.name === "lambda") {
          const names = call.args.slice(0, -1).map((a) => (a.kind === "string" ? a.value : ""));
          walk(call.args[call.args.length - 1] as typeof e, new Set([...scope, ...names]));
          return;
        } else if (call.name === "lambdaVariables") {
          const n = call.args[0];
          assert.ok(n?.kind === "string" && scope.has(n.value), `${path}: lambda variable in scope`);
        }
      if (e.kind === "call") for (const a of e.args) walk(a, scope);
      if (e.kind === "member") walk(e.target, scope);
      if (e.kind === "index") {
        walk(e.target, scope);
        walk(e.index, scope);
      }
    };
    walk(parseExpression(source), new Set());
  }
});

test("every parameter is used and every variable referenced", () => {
  const usedParameters = new Set(literalArgs("parameters"));
  for (const name of Object.keys(template.parameters))
    assert.ok(usedParameters.has(name), `parameter ${name} is used`);
  const usedVariables = new Set(literalArgs("variables"));
  for (const name of Object.keys(template.variables))
    assert.ok(usedVariables.has(name), `variable ${name} is referenced`);
});

test("every variable, name and output evaluates with the default parameters", () => {
  const ctx = {
    template,
    parameters: {
      gatewayImage: "registry.invalid/relay-fleet-gateway:1",
      adminSshPublicKey: "ssh-ed25519 AAAA test",
    },
  };
  for (const name of Object.keys(template.variables))
    assert.doesNotThrow(() => evaluateValue(template.variables[name], ctx), `variable ${name}`);
  for (const d of deployedResources(ctx))
    assert.doesNotThrow(() => resourcePath(d.resource, d.ctx), `${d.resource.type} name`);
  for (const [name, o] of Object.entries(template.outputs))
    assert.doesNotThrow(() => evaluateValue(o.value, ctx), `output ${name}`);
  // Global names fit Azure's rules.
  const storage = template.resources.find((r) => r.type === "Microsoft.Storage/storageAccounts");
  assert.match(String(evaluateValue(storage?.name, ctx)), /^[a-z0-9]{3,24}$/);
});

test("resourceId() and dependsOn name resources the template declares (or their sub-resources)", () => {
  const ctx = {
    template,
    parameters: { gatewayImage: "registry.invalid/gw:1", adminSshPublicKey: "ssh-ed25519 AAAA test" },
  };
  const declared = new Set(template.resources.map((r) => r.type.toLowerCase()));
  const deployed = deployedResources(ctx);
  const ids = new Set(deployed.map((d) => resourcePath(d.resource, d.ctx).toLowerCase()));
  // A dependsOn may name a copy loop (every element of it), as ARM allows.
  const loops = new Set(
    template.resources.flatMap((r) => (r.copy ? [(r.copy as { name: string }).name] : [])),
  );
  // Sub-resources that live inside a declared resource's properties, and keys of the hub's policies.
  const inside = new Set([
    "microsoft.network/loadbalancers/frontendipconfigurations",
    "microsoft.network/loadbalancers/backendaddresspools",
    "microsoft.network/loadbalancers/probes",
    "microsoft.network/virtualnetworks/subnets",
    "microsoft.devices/iothubs/iothubkeys",
  ]);
  for (const type of literalArgs("resourceId"))
    assert.ok(declared.has(type.toLowerCase()) || inside.has(type.toLowerCase()), `resourceId of ${type}`);
  for (const type of literalArgs("subscriptionResourceId"))
    assert.equal(type, "Microsoft.Authorization/roleDefinitions");
  // Extension resources (role assignments) are addressed under their scope.
  for (const { resource: r, ctx } of deployed)
    if (typeof r.scope === "string")
      ids.add(
        `${String(evaluateValue(r.scope, ctx))}/providers/${r.type}/${String(evaluateValue(r.name, ctx))}`.toLowerCase(),
      );
  for (const { resource: r, ctx } of deployed)
    for (const dep of (r.dependsOn as string[] | undefined) ?? []) {
      if (loops.has(dep)) continue;
      const id = String(evaluateValue(dep, ctx)).toLowerCase();
      const path = id.replace(/^\/subscriptions\/[^/]+\/resourcegroups\/[^/]+\/providers\//, "");
      assert.ok(ids.has(path), `${r.type} depends on ${path}, which the template declares`);
    }
});
