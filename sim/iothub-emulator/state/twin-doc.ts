/**
 * One twin's mutable state (tags, desired, reported) with the versions, etag and `$metadata` the
 * hub keeps. Limits are checked on the *result* of every change before it is committed, so a
 * rejected update leaves the twin untouched.
 */

import { applyMergePatch, computeMergePatch } from "../../../lib/twin/merge-patch.ts";
import { getOwn, isJsonObject, type JsonObject, jsonEqual, setOwn } from "./json.ts";
import { checkKeys, checkSize } from "./limits.ts";

export interface TwinDoc {
  tags: JsonObject;
  desired: JsonObject;
  reported: JsonObject;
  desiredVersion: number;
  reportedVersion: number;
  /** Twin version: bumped by every change. */
  version: number;
  /** Bumped by tag and desired changes only: optimistic concurrency guards what the service writes. */
  etagCounter: number;
  desiredMeta: JsonObject;
  reportedMeta: JsonObject;
}

export function newTwinDoc(now = new Date().toISOString()): TwinDoc {
  return {
    tags: {},
    desired: {},
    reported: {},
    desiredVersion: 1,
    reportedVersion: 1,
    version: 1,
    etagCounter: 1,
    desiredMeta: { $lastUpdated: now },
    reportedMeta: { $lastUpdated: now },
  };
}

/** `AAAAAAAAAAE=`: base64 of the counter as 8 bytes big-endian, the shape real twin etags have. */
export function twinEtag(doc: TwinDoc): string {
  const buf = Buffer.alloc(8);
  buf.writeBigUInt64BE(BigInt(doc.etagCounter));
  return buf.toString("base64");
}

/** Mirrors `patch` into the metadata tree: each written node gets `$lastUpdated` (+ version). */
function patchMeta(meta: JsonObject, patch: JsonObject, now: string, version?: number): JsonObject {
  const out: JsonObject = { ...meta, $lastUpdated: now };
  if (version !== undefined) out.$lastUpdatedVersion = version;
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else if (isJsonObject(value)) {
      const old = getOwn(out, key);
      setOwn(out, key, patchMeta(isJsonObject(old) ? old : {}, value, now, version));
    } else {
      setOwn(
        out,
        key,
        version === undefined ? { $lastUpdated: now } : { $lastUpdated: now, $lastUpdatedVersion: version },
      );
    }
  }
  return out;
}

export type Section = "desired" | "reported";

/**
 * Applies a merge patch to one properties section. Returns the effective patch (empty when
 * nothing changed: versions are then left alone) or throws a 400 HubError.
 */
export function patchSection(doc: TwinDoc, section: Section, patch: JsonObject): JsonObject {
  checkKeys(patch, `properties.${section}`);
  const current = doc[section];
  const next = applyMergePatch(current, patch);
  checkSize(next, section);
  const effective = computeMergePatch(current, next);
  if (Object.keys(effective).length === 0) return effective;
  const now = new Date().toISOString();
  doc[section] = next;
  doc.version += 1;
  if (section === "desired") {
    doc.desiredVersion += 1;
    doc.etagCounter += 1;
    doc.desiredMeta = patchMeta(doc.desiredMeta, effective, now, doc.desiredVersion);
  } else {
    doc.reportedVersion += 1;
    doc.reportedMeta = patchMeta(doc.reportedMeta, effective, now);
  }
  return effective;
}

/** Replaces the desired section wholesale; returns the patch a connected device must apply. */
export function replaceDesired(doc: TwinDoc, desired: JsonObject): JsonObject {
  const clean = stripReadOnly(desired);
  checkKeys(clean, "properties.desired");
  checkSize(clean, "desired");
  const patch = computeMergePatch(doc.desired, clean);
  if (Object.keys(patch).length === 0) return patch;
  doc.desired = clean;
  doc.version += 1;
  doc.desiredVersion += 1;
  doc.etagCounter += 1;
  doc.desiredMeta = patchMeta({}, clean, new Date().toISOString(), doc.desiredVersion);
  return patch;
}

/** Merges (or, with `replace`, swaps) tags. Returns true when they changed. */
export function updateTags(doc: TwinDoc, tags: JsonObject, replace: boolean): boolean {
  checkKeys(tags, "tags");
  const next = replace ? stripReadOnly(tags) : applyMergePatch(doc.tags, tags);
  checkSize(next, "tags");
  if (jsonEqual(next, doc.tags)) return false;
  doc.tags = next;
  doc.version += 1;
  doc.etagCounter += 1;
  return true;
}

/** Drops `$`-prefixed keys a client may echo back from a twin it read (`$version`, `$metadata`). */
export function stripReadOnly(obj: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(obj)) if (!k.startsWith("$")) setOwn(out, k, v);
  return out;
}

/** The `properties` object as REST returns it (with `$metadata` and `$version`). */
export function renderProperties(doc: TwinDoc, withMetadata = true): JsonObject {
  const desired: JsonObject = { ...doc.desired };
  const reported: JsonObject = { ...doc.reported };
  if (withMetadata) {
    desired.$metadata = doc.desiredMeta;
    reported.$metadata = doc.reportedMeta;
  }
  desired.$version = doc.desiredVersion;
  reported.$version = doc.reportedVersion;
  return { desired, reported };
}
