/**
 * JSON values as the emulator stores them. Twin updates use the project's one JSON merge patch
 * (`lib/twin/merge-patch.ts`); its own-property helpers are re-exported for the emulator's code.
 */
export { getOwn, jsonEqual, setOwn } from "../../../lib/twin/merge-patch.ts";

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

/** Parses JSON text, returning `undefined` instead of throwing. */
export function tryParseJson(text: string): { ok: true; value: Json } | { ok: false; error: string } {
  try {
    return { ok: true, value: JSON.parse(text) as Json };
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err.message : String(err) };
  }
}
