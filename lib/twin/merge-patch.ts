/**
 * JSON merge patch (RFC 7396), the way IoT Hub updates twin sections: objects merge key by key,
 * `null` deletes a key, anything else (arrays included) replaces the value whole. The one copy of
 * it for the module (desired patches), the rollout (the patch it writes), the module's reported
 * properties and the IoT Hub emulator.
 *
 * - `applyMergePatch(target, patch)`: what a twin becomes after a patch (the hub, the module);
 * - `computeMergePatch(from, to)`: the patch that turns one document into another (what a writer
 *   sends so that removed keys are removed: `null`).
 *
 * Keys are always own data properties: plain assignment would take `__proto__` for the prototype
 * setter and drop the key, and reading `constructor` from a plain object finds Object's own.
 */

/** A JSON object as a merge patch sees it. */
export type PatchObject = { [key: string]: unknown };

/** True for a JSON object (not an array, not `null`). */
export function isPlainObject(value: unknown): value is PatchObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Sets `key` as an own data property, whatever its name (`__proto__` included). */
export function setOwn(target: PatchObject, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/** The value of an own property only (`constructor` must not find Object's). */
export function getOwn<T>(target: { [key: string]: T }, key: string): T | undefined {
  return Object.hasOwn(target, key) ? target[key] : undefined;
}

/** Deep equality of two JSON values; object key order is ignored, array order is not. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b))
    return a.length === b.length && a.every((v, i) => jsonEqual(v, b[i]));
  if (isPlainObject(a) && isPlainObject(b)) {
    const ka = Object.keys(a);
    if (ka.length !== Object.keys(b).length) return false;
    return ka.every((k) => Object.hasOwn(b, k) && jsonEqual(a[k], b[k]));
  }
  return false;
}

function copyOf<T>(value: T): T {
  // A patch's values must not alias the caller's: a later change to one would change the other.
  return typeof value === "object" && value !== null ? structuredClone(value) : value;
}

/**
 * `target` after `patch`, as a new object (`target` is not changed): objects merge recursively,
 * `null` deletes a key, other values (arrays included) replace.
 */
export function applyMergePatch<T extends PatchObject>(target: T, patch: PatchObject): T {
  const out: PatchObject = {};
  for (const key of Object.keys(target)) setOwn(out, key, target[key]);
  for (const key of Object.keys(patch)) {
    const value = patch[key];
    if (value === null) {
      delete out[key];
    } else if (isPlainObject(value)) {
      const current = getOwn(out, key);
      setOwn(out, key, applyMergePatch(isPlainObject(current) ? current : {}, value));
    } else {
      setOwn(out, key, copyOf(value));
    }
  }
  return out as T;
}

/**
 * The merge patch that turns `from` into `to`: new and changed values, `null` for removed keys,
 * nested objects as nested patches; empty when they are equal. `$`-prefixed keys (`$version`,
 * `$metadata`, which IoT Hub adds to a twin it returns) are read-only and left out on both sides.
 * `applyMergePatch(from, computeMergePatch(from, to))` equals `to` (without `$` keys).
 */
export function computeMergePatch<T extends PatchObject>(from: PatchObject, to: T): T {
  const patch: PatchObject = {};
  for (const key of Object.keys(from)) {
    if (!key.startsWith("$") && !Object.hasOwn(to, key)) setOwn(patch, key, null);
  }
  for (const key of Object.keys(to)) {
    if (key.startsWith("$")) continue;
    const value = to[key];
    const old = getOwn(from, key);
    if (jsonEqual(old, value)) continue;
    setOwn(
      patch,
      key,
      isPlainObject(old) && isPlainObject(value) ? computeMergePatch(old, value) : copyOf(value),
    );
  }
  return patch as T;
}
