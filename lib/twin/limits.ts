/**
 * IoT Hub's twin size rule (iothub-protocol.md appendix "Twin limits"): a section's size is the
 * sum, over every property, of its key's length plus its value's length; strings count their
 * characters (control characters excluded), numbers 8 bytes, booleans 4, nested objects the sum of
 * their keys and values. Read-only keys (`$version`, `$metadata`, `$etag`) do not count.
 * Used to check the contract against the 32 KB desired and reported limits.
 */

/** Desired and reported sections are each limited to 32 KB. */
export const TWIN_SECTION_LIMIT_BYTES = 32 * 1024;
/** Maximum nesting depth of a twin section. */
export const TWIN_MAX_DEPTH = 10;

// biome-ignore lint/suspicious/noControlCharactersInRegex: the rule excludes C0/C1 controls by definition
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;

function stringSize(s: string): number {
  return Buffer.byteLength(s.replace(CONTROL, ""), "utf8");
}

/** Size of a twin value by IoT Hub's rule. */
export function twinSizeBytes(value: unknown): number {
  if (value === null || value === undefined) return 0;
  if (typeof value === "string") return stringSize(value);
  if (typeof value === "number") return 8;
  if (typeof value === "boolean") return 4;
  if (Array.isArray(value)) return value.reduce((sum: number, v) => sum + twinSizeBytes(v), 0);
  if (typeof value === "object") {
    let sum = 0;
    for (const [k, v] of Object.entries(value)) {
      if (k.startsWith("$")) continue;
      sum += stringSize(k) + twinSizeBytes(v);
    }
    return sum;
  }
  return 0;
}

/** Nesting depth of a value (a scalar is 0, `{a:1}` is 1). */
export function twinDepth(value: unknown): number {
  if (typeof value !== "object" || value === null) return 0;
  const children = Array.isArray(value) ? value : Object.values(value);
  return 1 + children.reduce((max: number, v) => Math.max(max, twinDepth(v)), 0);
}
