/**
 * The one JSON merge patch (lib/twin/merge-patch.ts), and the two places where the copies it
 * replaced differed in a way that was a bug.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { applyMergePatch, computeMergePatch } from "../../lib/twin/merge-patch.ts";
import { reportedDiff } from "../../modules/relayListener/src/reporter.ts";

test("apply: objects merge, null deletes, arrays and scalars replace, the target is untouched", () => {
  const target = { a: 1, o: { x: 1, y: 2 }, list: [1, 2] };
  const out = applyMergePatch(target, { a: null, o: { y: null, z: 3 }, list: [3], n: "new" });
  assert.deepEqual(out, { o: { x: 1, z: 3 }, list: [3], n: "new" });
  assert.deepEqual(target, { a: 1, o: { x: 1, y: 2 }, list: [1, 2] });
});

test("apply keeps a `__proto__` key as a key (the module's copy set the prototype instead)", () => {
  // The module's own merge used plain assignment: a desired mapping named __proto__ vanished
  // before the validator could report it, and the applied object got a new prototype.
  const patch = JSON.parse(`{"mappings":{"__proto__":{"target":"10.0.0.1:22"},"ok":{"target":"h:1"}}}`);
  const out = applyMergePatch<Record<string, unknown>>({}, patch);
  const mappings = out.mappings as Record<string, unknown>;
  assert.deepEqual(Object.keys(mappings).sort(), ["__proto__", "ok"]);
  assert.equal(Object.getPrototypeOf(mappings), Object.prototype);
});

test("apply copies values: a later change to the patch does not reach the result", () => {
  const patch = { list: [{ a: 1 }] };
  const out = applyMergePatch({}, patch);
  patch.list[0] = { a: 2 };
  assert.deepEqual(out, { list: [{ a: 1 }] });
});

test("compute: new and changed values, null for removed keys, nested patches; $ keys left out", () => {
  const from = { $version: 7, keep: 1, change: 1, gone: { x: 1 }, nested: { a: 1, b: 2 } };
  const to = { keep: 1, change: 2, nested: { a: 1, c: 3 }, added: [1] };
  const patch = computeMergePatch(from, to);
  assert.deepEqual(patch, { gone: null, change: 2, nested: { b: null, c: 3 }, added: [1] });
  const { $version: _v, ...plain } = from;
  assert.deepEqual(applyMergePatch(plain, patch), to);
  assert.deepEqual(computeMergePatch(to, to), {});
});

test("compute sees no change where only key order differs (the rollout's copy compared JSON text)", () => {
  // JSON.stringify comparison wrote a patch, and bumped the twin's desired $version, for an
  // array of objects that only came back from the hub with its keys in another order.
  const from = { list: [{ a: 1, b: 2 }] };
  const to = { list: [{ b: 2, a: 1 }] };
  assert.deepEqual(computeMergePatch(from, to), {});
});

test("reported properties: only changed fields go out, updatedAt alone is no change", () => {
  const base = {
    schemaVersion: "1.0",
    moduleVersion: "1",
    appliedDesiredVersion: 3,
    status: "running" as const,
    startedAt: "t0",
    updatedAt: "t1",
    relay: {
      status: "online" as const,
      endpoint: "e",
      hybridConnection: "h",
      keyName: "k",
      keyFingerprint: "f",
      listeners: [],
    },
    mappings: {},
    errors: [],
  };
  assert.deepEqual(reportedDiff(base, { ...base, updatedAt: "t2" }), {});
  const next = { ...base, updatedAt: "t3", relay: { ...base.relay, status: "reconnecting" as const } };
  assert.deepEqual(reportedDiff(base, next), { relay: { status: "reconnecting" }, updatedAt: "t3" });
});
