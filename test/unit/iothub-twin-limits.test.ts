import assert from "node:assert/strict";
import { test } from "node:test";
import { applyMergePatch, computeMergePatch } from "../../lib/twin/merge-patch.ts";
import { HubError } from "../../sim/iothub-emulator/errors.ts";
import { checkId, checkKeys, checkSize, sectionSize } from "../../sim/iothub-emulator/state/limits.ts";
import {
  newTwinDoc,
  patchSection,
  replaceDesired,
  twinEtag,
  updateTags,
} from "../../sim/iothub-emulator/state/twin-doc.ts";

const is400 = (err: unknown) => err instanceof HubError && err.status === 400;

test("section size counts keys plus values the way IoT Hub does", () => {
  assert.equal(sectionSize({ ab: "xyz" }), 5);
  assert.equal(sectionSize({ n: 1 }), 1 + 8);
  assert.equal(sectionSize({ b: true }), 1 + 4);
  assert.equal(sectionSize({ o: { k: "v" } }), 1 + 2);
  assert.equal(sectionSize({ s: "é" }), 1 + 2);
  assert.equal(sectionSize({ s: "a\u0001b" }), 1 + 2);
  assert.equal(sectionSize({ $version: 5, a: 1 }), 9);
});

test("tags over 8 KB and desired over 32 KB are rejected", () => {
  checkSize({ t: "x".repeat(8191) }, "tags");
  assert.throws(() => checkSize({ t: "x".repeat(8192) }, "tags"), is400);
  checkSize({ d: "x".repeat(32_767) }, "desired");
  assert.throws(() => checkSize({ d: "x".repeat(32_768) }, "reported"), is400);
});

test("key rules: no '.', '$', space or control characters, at most 1 KB; depth at most 10", () => {
  checkKeys({ rdp: { target: "10.0.0.5:3389" }, "a-b_c": 1 }, "desired");
  for (const key of ["a.b", "$x", "a b", "a\u0000", "a\u0085", "", "k".repeat(1025)]) {
    assert.throws(() => checkKeys({ [key]: 1 }, "desired"), is400, JSON.stringify(key));
  }
  let deep: Record<string, unknown> = { leaf: 1 };
  for (let i = 0; i < 9; i++) deep = { n: deep };
  checkKeys(deep as never, "desired");
  assert.throws(() => checkKeys({ n: deep } as never, "desired"), is400);
});

test("ids follow IoT Hub's character set", () => {
  assert.equal(checkId("site-0042", "deviceId"), "site-0042");
  assert.equal(checkId("$edgeAgent", "moduleId"), "$edgeAgent");
  for (const bad of ["", "a/b", "a b", "x".repeat(129), 5])
    assert.throws(() => checkId(bad, "deviceId"), is400);
});

test("merge patch deletes with null; computeMergePatch is its inverse", () => {
  const a = { x: 1, y: { z: 2, w: 3 } };
  const p = { y: { z: null, v: 4 }, q: "n" };
  const b = applyMergePatch(a, p);
  assert.deepEqual(b, { x: 1, y: { w: 3, v: 4 }, q: "n" });
  assert.deepEqual(applyMergePatch(a, computeMergePatch(a, b)), b);
  assert.deepEqual(computeMergePatch(b, {}), { x: null, y: null, q: null });
});

test("twin versions and etag: desired bumps both, reported only its own version, no-ops bump nothing", () => {
  const doc = newTwinDoc();
  const etag0 = twinEtag(doc);
  assert.equal(etag0, "AAAAAAAAAAE=");
  assert.deepEqual(patchSection(doc, "desired", { a: 1 }), { a: 1 });
  assert.equal(doc.desiredVersion, 2);
  assert.notEqual(twinEtag(doc), etag0);
  const etag1 = twinEtag(doc);
  patchSection(doc, "reported", { r: true });
  assert.equal(doc.reportedVersion, 2);
  assert.equal(twinEtag(doc), etag1);
  assert.deepEqual(patchSection(doc, "desired", { a: 1 }), {});
  assert.equal(doc.desiredVersion, 2);
  assert.deepEqual(replaceDesired(doc, { b: 2 }), { a: null, b: 2 });
  assert.equal(updateTags(doc, { t: 1 }, false), true);
  assert.equal(updateTags(doc, { t: 1 }, false), false);
  const meta = doc.desiredMeta as { b?: { $lastUpdatedVersion?: number } };
  assert.equal(meta.b?.$lastUpdatedVersion, doc.desiredVersion);
});

test("a rejected patch leaves the section untouched", () => {
  const doc = newTwinDoc();
  patchSection(doc, "reported", { keep: "me" });
  const before = structuredClone(doc);
  assert.throws(() => patchSection(doc, "reported", { big: "x".repeat(40_000) }), is400);
  assert.throws(() => patchSection(doc, "reported", { "bad key": 1 }), is400);
  assert.deepEqual(doc, before);
});
