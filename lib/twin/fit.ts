/**
 * Keeps a reported-properties document under IoT Hub's 32 KB section limit. IoT Hub rejects a
 * patch that would grow the section past it, and the module would then report nothing at all;
 * degrading detail is better. Steps, each only when still too big: cut mapping errors to 24
 * characters, drop reported targets (they are in desired anyway), keep only 5 errors.
 */
import { TWIN_SECTION_LIMIT_BYTES, twinSizeBytes } from "./limits.ts";
import type { ReportedProperties } from "./reported.ts";

/** Leaves room for the read-only keys and the module's own slack. */
export const REPORTED_BUDGET_BYTES = TWIN_SECTION_LIMIT_BYTES - 1024;

/** Returns `doc` itself when it fits, otherwise a trimmed copy. */
export function fitReported(doc: ReportedProperties, budget = REPORTED_BUDGET_BYTES): ReportedProperties {
  if (twinSizeBytes(doc) <= budget) return doc;
  const mappings = { ...doc.mappings };
  for (const [name, m] of Object.entries(mappings)) {
    mappings[name] = { ...m, lastError: m.lastError ? m.lastError.slice(0, 24) : null };
  }
  let out: ReportedProperties = { ...doc, mappings };
  if (twinSizeBytes(out) <= budget) return out;
  for (const [name, m] of Object.entries(mappings)) mappings[name] = { ...m, target: "" };
  out = { ...out, mappings };
  if (twinSizeBytes(out) <= budget) return out;
  return { ...out, errors: out.errors.slice(0, 5) };
}
