/** JSON values and the JSON merge-patch (RFC 7396) that twin updates use. */

export type Json = null | boolean | number | string | Json[] | JsonObject;
export interface JsonObject {
  [key: string]: Json;
}

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function cloneJson<T extends Json>(value: T): T {
  return structuredClone(value);
}

/**
 * Sets `key` as an own data property. Plain assignment would treat `__proto__` as the prototype
 * setter and drop the key; IoT Hub keeps such a key like any other.
 */
export function setOwn(target: JsonObject, key: string, value: Json): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/** The value of an own property only (`constructor` must not find Object's). */
export function getOwn(target: JsonObject, key: string): Json | undefined {
  return Object.hasOwn(target, key) ? target[key] : undefined;
}

/** Applies `patch` to a copy of `target`: objects merge recursively, `null` deletes a key. */
export function mergePatch(target: JsonObject, patch: JsonObject): JsonObject {
  const out: JsonObject = { ...target };
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) {
      delete out[key];
    } else if (isJsonObject(value)) {
      const current = getOwn(out, key);
      setOwn(out, key, mergePatch(isJsonObject(current) ? current : {}, value));
    } else {
      setOwn(out, key, cloneJson(value));
    }
  }
  return out;
}

/** Deep equality of two JSON values (key order ignored). */
export function jsonEqual(a: Json | undefined, b: Json | undefined): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b))
    return a.length === b.length && a.every((v, i) => jsonEqual(v, b[i]));
  if (isJsonObject(a) && isJsonObject(b)) {
    const ka = Object.keys(a);
    if (ka.length !== Object.keys(b).length) return false;
    return ka.every((k) => Object.hasOwn(b, k) && jsonEqual(a[k], b[k]));
  }
  return false;
}

/**
 * The patch that turns `from` into `to` (removed keys become `null`). Used when a twin section is
 * replaced wholesale, so connected devices still receive a patch that keeps their cache right.
 */
export function diffPatch(from: JsonObject, to: JsonObject): JsonObject {
  const patch: JsonObject = {};
  for (const key of Object.keys(from)) if (!Object.hasOwn(to, key)) setOwn(patch, key, null);
  for (const [key, value] of Object.entries(to)) {
    const old = getOwn(from, key);
    if (jsonEqual(old, value)) continue;
    setOwn(patch, key, isJsonObject(old) && isJsonObject(value) ? diffPatch(old, value) : cloneJson(value));
  }
  return patch;
}

/** Parses JSON text, returning `undefined` instead of throwing. */
export function tryParseJson(text: string): { ok: true; value: Json } | { ok: false; error: string } {
  try {
    return { ok: true, value: JSON.parse(text) as Json };
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err.message : String(err) };
  }
}
