/**
 * Proves the triggers register with `@azure/functions` exactly as the Functions host loads them:
 * the host's worker provides the `@azure/functions-core` module (registerFunction /
 * setProgrammingModel); this test provides the same module before the app's entry point is
 * imported and inspects what the package hands to the host.
 */
import assert from "node:assert/strict";
import Module from "node:module";
import { test } from "node:test";
import { spawnTs } from "../helpers/index.ts";

interface Binding {
  type: string;
  direction: string;
  authLevel?: string;
  methods?: string[];
  route?: string;
  schedule?: string;
}
interface Registered {
  name: string;
  bindings: Record<string, Binding>;
  callback: unknown;
}

const registered: Registered[] = [];
let programmingModel: { name?: string } | undefined;
const fakeCore = {
  version: "4.0.0",
  registerFunction(metadata: { name: string; bindings: Record<string, Binding> }, callback: unknown) {
    registered.push({ name: metadata.name, bindings: metadata.bindings, callback });
    return { dispose() {} };
  },
  setProgrammingModel(model: { name?: string }) {
    programmingModel = model;
  },
  getProgrammingModel: () => programmingModel,
  registerHook: () => ({ dispose() {} }),
  log: () => {},
};
// The worker does this too: it serves `@azure/functions-core` from inside the host process.
const loader = Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown };
const originalLoad = loader._load;
loader._load = function (request: string, ...rest: unknown[]) {
  if (request === "@azure/functions-core") return fakeCore;
  return originalLoad.call(this, request, ...rest);
};

test("every trigger registers with the binding the host expects", async () => {
  // The app refuses to load without its timer's schedule (see the next test).
  process.env.RECONCILE_SCHEDULE = "0 */5 * * * *";
  await import("../../cloud/functions/src/index.ts");
  assert.equal(programmingModel?.name, "@azure/functions");
  const byName = new Map(registered.map((r) => [r.name, r]));
  const http = (name: string) => {
    const r = byName.get(name);
    assert.ok(r, `${name} registered`);
    const trigger = Object.values(r.bindings).find((b) => b.type === "httpTrigger");
    assert.ok(trigger, `${name} has an httpTrigger binding`);
    assert.equal(typeof r.callback, "function");
    return { ...trigger, out: Object.values(r.bindings).find((b) => b.direction === "out")?.type };
  };
  const expected: Array<[string, string, string]> = [
    ["sites-create", "POST", "sites"],
    ["sites-list", "GET", "sites"],
    ["sites-get", "GET", "sites/{id}"],
    ["sites-delete", "DELETE", "sites/{id}"],
    ["mappings-add", "POST", "sites/{id}/mappings/{name}"],
    ["mappings-update", "PATCH", "sites/{id}/mappings/{name}"],
    ["mappings-put", "PUT", "sites/{id}/mappings/{name}"],
    ["mappings-delete", "DELETE", "sites/{id}/mappings/{name}"],
    ["sites-rotate-keys", "POST", "sites/{id}/rotate-keys"],
    ["devices-add", "POST", "sites/{id}/devices"],
    ["devices-list", "GET", "sites/{id}/devices"],
    ["devices-remove", "DELETE", "sites/{id}/devices/{deviceId}"],
    ["sites-move", "POST", "sites/{id}/move"],
    ["relay-namespaces", "GET", "relay-namespaces"],
    ["onboarding-jobs-create", "POST", "onboarding-jobs"],
    ["onboarding-jobs-get", "GET", "onboarding-jobs/{jobId}"],
  ];
  for (const [name, method, route] of expected) {
    const b = http(name);
    assert.deepEqual(b.methods, [method], name);
    assert.equal(b.route, route, name);
    assert.equal(b.authLevel, "function", `${name} needs a function key`);
    assert.equal(b.out, "http");
  }
  const grid = byName.get("device-lifecycle");
  assert.ok(
    Object.values(grid?.bindings ?? {}).some((b) => b.type === "eventGridTrigger" && b.direction === "in"),
  );
  const timer = Object.values(byName.get("reconcile")?.bindings ?? {}).find((b) => b.type === "timerTrigger");
  assert.equal(timer?.schedule, "%RECONCILE_SCHEDULE%");
  assert.equal(new Set(registered.map((r) => r.name)).size, registered.length, "no duplicate registrations");
});

test("the app refuses to load without RECONCILE_SCHEDULE, naming it", async (t) => {
  const probe = spawnTs(t, "cloud/functions/src/index.ts", [], { RECONCILE_SCHEDULE: "" });
  const code = await probe.exited;
  assert.notEqual(code, 0, "the entry point failed");
  assert.match(probe.stderr(), /RF_ERR_ROLLOUT_CONFIG/);
  assert.match(probe.stderr(), /RECONCILE_SCHEDULE is required/);
});
