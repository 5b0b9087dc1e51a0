/**
 * How the IoT Hub emulator picks and merges at-scale deployments for an edge device (issue 13,
 * section 1): the highest-priority base deployment wholesale (newest on a tie), layered ones on
 * top in priority order; and the fleet's own target conditions as the emulator evaluates them.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  FLEET_TARGET_CONDITION,
  RETIRED_TARGET_CONDITION,
  ringCondition,
} from "../../lib/fleet-deployment.ts";
import { chooseDeployments, composeModulesContent } from "../../sim/iothub-emulator/configurations.ts";
import { evaluate } from "../../sim/iothub-emulator/query/evaluate.ts";
import { parseCondition } from "../../sim/iothub-emulator/query/parse.ts";
import type { JsonObject } from "../../sim/iothub-emulator/state/json.ts";
import type { ConfigurationRecord } from "../../sim/iothub-emulator/state/store.ts";

function config(
  id: string,
  priority: number,
  modulesContent: JsonObject,
  created = "2026-01-01",
): ConfigurationRecord {
  return {
    id,
    schemaVersion: "1.0",
    labels: {},
    content: { modulesContent },
    targetCondition: "",
    priority,
    metrics: {},
    createdTimeUtc: created,
    lastUpdatedTimeUtc: created,
    etagCounter: 1,
  };
}

const base = (image: string, extra: JsonObject = {}): JsonObject => ({
  $edgeAgent: { "properties.desired": { modules: { relayListener: { settings: { image } } } } },
  $edgeHub: { "properties.desired": { routes: { r: "FROM /* INTO $upstream" } } },
  ...extra,
});

test("the highest-priority base deployment applies wholesale; a lower one only targets", () => {
  const low = config("low", 5, base("old", { extraModule: { "properties.desired": { a: 1 } } }));
  const high = config("high", 10, base("new"));
  const { base: chosen, layers } = chooseDeployments([high, low]);
  assert.equal(chosen?.id, "high");
  assert.deepEqual(layers, []);
  const out = composeModulesContent([low, high]);
  assert.deepEqual(out.get("$edgeAgent"), { modules: { relayListener: { settings: { image: "new" } } } });
  // Nothing of the lower base deployment leaks in (IoT Hub applies one base deployment).
  assert.equal(out.has("extraModule"), false);
});

test("on a priority tie the deployment created last wins", () => {
  const first = config("first", 10, base("a"), "2026-01-01T00:00:00Z");
  const second = config("second", 10, base("b"), "2026-01-02T00:00:00Z");
  assert.equal(chooseDeployments([second, first]).base?.id, "second");
  assert.equal(chooseDeployments([first, second]).base?.id, "second");
});

test("layered deployments set paths on top of the base, in priority order", () => {
  const b = config("base", 10, base("v1"));
  const ring = config("ring", 20, {
    $edgeAgent: { "properties.desired.modules.relayListener": { settings: { image: "v2" } } },
    relayListener: { "properties.desired.logLevel": "debug" },
  });
  const later = config("later", 30, {
    $edgeAgent: { "properties.desired.modules.relayListener": { settings: { image: "v3" } } },
  });
  const { layers } = chooseDeployments([later, b, ring]);
  assert.deepEqual(
    layers.map((c) => c.id),
    ["ring", "later"],
  );
  const out = composeModulesContent([later, b, ring]);
  const agent = out.get("$edgeAgent") as { modules: { relayListener: { settings: { image: string } } } };
  assert.equal(agent.modules.relayListener.settings.image, "v3");
  assert.deepEqual(out.get("$edgeHub"), { routes: { r: "FROM /* INTO $upstream" } });
  assert.deepEqual(out.get("relayListener"), { logLevel: "debug" });
});

test("the fleet's target conditions select onboarded, ring and retired devices", () => {
  const twin = (tags: JsonObject) => ({ deviceId: "d", tags, capabilities: { iotEdge: true } });
  const onboarded = twin({ relayFleet: { siteId: "plant-1", profile: "default" } });
  const canary = twin({ relayFleet: { siteId: "plant-2", ring: "canary" } });
  const retired = twin({ relayFleetRetired: { siteId: "plant-3" } });
  const other = twin({ relay: { siteId: "x" } });
  const matches = (cond: string, t: JsonObject) => evaluate(parseCondition(cond), t);
  assert.deepEqual(
    [onboarded, canary, retired, other].map((t) => matches(FLEET_TARGET_CONDITION, t)),
    [true, true, false, false],
  );
  assert.deepEqual(
    [onboarded, canary, retired, other].map((t) => matches(ringCondition("canary"), t)),
    [false, true, false, false],
  );
  assert.deepEqual(
    [onboarded, canary, retired, other].map((t) => matches(RETIRED_TARGET_CONDITION, t)),
    [false, false, true, false],
  );
  // OR, as an operator's deployment might combine rings.
  assert.equal(matches("tags.relayFleet.ring='canary' OR tags.relayFleet.ring='beta'", canary), true);
  assert.equal(matches("tags.relayFleet.ring='beta' OR tags.relayFleet.siteId='nope'", canary), false);
});
