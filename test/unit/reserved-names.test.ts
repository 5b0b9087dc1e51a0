/**
 * Mapping names that plain objects already answer to (`constructor`, `__proto__`, `toString`):
 * refused by the one name rule, and every place that keys objects by name looks at own
 * properties only, so such a name can neither vanish nor resolve to a built-in.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { buildDesired, withoutMeta } from "../../cloud/functions/src/rollout/desired-twin.ts";
import { type MappingSpec, mappingSpecSchema } from "../../cloud/functions/src/rollout/schemas.ts";
import {
  DesiredPropertiesSchema,
  defaultConfig,
  diffConfig,
  isMappingName,
  MappingSchema,
  validateDesired,
} from "../../lib/twin/index.ts";
import { applyMergePatch, computeMergePatch } from "../../lib/twin/merge-patch.ts";

const NAMES = ["constructor", "__proto__", "toString"];
const relay = { endpoint: "sb://r.example", hybridConnection: "site-x", sasKeyName: "listen", sasKey: "k" };

describe("reserved mapping names", () => {
  test("the one name rule refuses them and keeps ordinary names", () => {
    for (const n of NAMES) assert.equal(isMappingName(n), false, n);
    for (const n of ["ssh", "rdp-1", "Constructor", "to_string"]) assert.equal(isMappingName(n), true, n);
  });

  test("the module's validator reports each one and applies the rest", () => {
    const raw = JSON.parse(
      `{"relay":${JSON.stringify(relay)},"mappings":{${[...NAMES, "ok"].map((n) => `"${n}":{"target":"10.0.0.1:22"}`).join(",")}}}`,
    );
    const { config, errors } = validateDesired(raw, defaultConfig());
    assert.deepEqual(Object.keys(config.mappings), ["ok"]);
    assert.deepEqual(errors.map((e) => e.path).sort(), NAMES.map((n) => `mappings.${n}`).sort());
    for (const e of errors) assert.match(e.message, /reserved name/);
    // A last good configuration never lends a built-in as the "old" value of a bad mapping.
    const bad = validateDesired({ relay, mappings: { constructor: { target: "nohost" } } }, defaultConfig());
    assert.deepEqual(Object.keys(bad.config.mappings), []);
  });

  test("the twin diff only sees own properties", () => {
    const next = defaultConfig();
    const mapping = MappingSchema.parse({ target: "10.0.0.1:22" });
    Object.defineProperty(next.mappings, "toString", { value: mapping, enumerable: true });
    const changes = diffConfig(defaultConfig(), next);
    assert.deepEqual(
      changes.map((c) => c.kind),
      ["mapping-added"],
      "an added name, not an 'update' of Object.prototype.toString",
    );
    assert.deepEqual(
      diffConfig(next, defaultConfig()).map((c) => c.kind),
      ["mapping-removed"],
    );
  });

  test("the desired-twin builder and its merge patch keep every key as a key", () => {
    const spec = mappingSpecSchema.parse({ target: "10.0.0.1:22" });
    const mappings = JSON.parse(`{"__proto__":{},"constructor":{}}`) as Record<string, MappingSpec>;
    for (const k of Object.keys(mappings)) mappings[k] = spec;
    const built = buildDesired(relay, mappings);
    assert.deepEqual(Object.keys(built.mappings as object).sort(), ["__proto__", "constructor"]);
    const patch = computeMergePatch({}, built);
    assert.ok(Object.hasOwn(patch.mappings as object, "__proto__"));
    const removal = computeMergePatch(withoutMeta(built), buildDesired(relay, {}));
    assert.deepEqual(removal.mappings, JSON.parse(`{"__proto__":null,"constructor":null}`));
    // An absent "constructor" is absent, not Object's constructor function.
    assert.deepEqual(computeMergePatch({ mappings: {} }, { mappings: {} }), {});
    // The rollout never writes them: the twin contract refuses them.
    assert.equal(DesiredPropertiesSchema.safeParse(built).success, false);
  });

  test("the merge patch (IoT Hub emulator, module) stores, diffs and deletes them like any key", () => {
    const patch = JSON.parse(`{"__proto__":{"a":1},"constructor":{"b":2},"toString":3}`);
    const merged = applyMergePatch({}, patch);
    assert.deepEqual(Object.keys(merged).sort(), ["__proto__", "constructor", "toString"]);
    assert.equal(Object.getPrototypeOf(merged), Object.prototype, "the prototype is untouched");
    assert.deepEqual(Object.keys(computeMergePatch({}, merged)).sort(), [
      "__proto__",
      "constructor",
      "toString",
    ]);
    assert.deepEqual(computeMergePatch({ constructor: 1 }, {}), { constructor: null });
    const cleared = applyMergePatch(merged, JSON.parse(`{"__proto__":null,"toString":null}`));
    assert.deepEqual(Object.keys(cleared), ["constructor"]);
  });
});
