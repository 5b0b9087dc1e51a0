/**
 * IoT Hub's twin limits (iothub-protocol.md, appendix "Twin limits"): section sizes counted the
 * way the hub counts them, key rules and nesting depth. Pure functions, so the same checks serve
 * REST and MQTT.
 */
import { HubError } from "../errors.ts";
import { isJsonObject, type Json, type JsonObject } from "./json.ts";

export const TAGS_MAX_BYTES = 8 * 1024;
export const PROPERTIES_MAX_BYTES = 32 * 1024;
export const KEY_MAX_BYTES = 1024;
export const MAX_DEPTH = 10;
export const MAX_MODULES_PER_DEVICE = 50;

// C0 and C1 control characters: not allowed in keys, not counted in string values.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const BAD_KEY = /[\u0000-\u001f\u007f-\u009f.$ ]/;

function valueSize(value: Json): number {
  if (typeof value === "number") return 8;
  if (typeof value === "boolean") return 4;
  if (typeof value === "string") return Buffer.byteLength(value.replace(CONTROL, ""), "utf8");
  if (value === null) return 0;
  if (Array.isArray(value)) return value.reduce<number>((n, v) => n + valueSize(v), 0);
  return sectionSize(value);
}

/** Size of a twin section as IoT Hub counts it: keys (UTF-8) plus values, recursively. */
export function sectionSize(section: JsonObject): number {
  let total = 0;
  for (const [key, value] of Object.entries(section)) {
    if (key.startsWith("$")) continue; // read-only elements ($version, $metadata) are excluded
    total += Buffer.byteLength(key, "utf8") + valueSize(value);
  }
  return total;
}

/** Throws a 400 HubError if a key breaks IoT Hub's rules or the object nests too deep. */
export function checkKeys(obj: JsonObject, where: string, depth = 1): void {
  if (depth > MAX_DEPTH)
    throw new HubError("ArgumentInvalid", `${where} nests deeper than ${MAX_DEPTH} levels`);
  for (const [key, value] of Object.entries(obj)) {
    if (key.length === 0 || Buffer.byteLength(key, "utf8") > KEY_MAX_BYTES)
      throw new HubError("ArgumentInvalid", `${where}: property names must be 1..${KEY_MAX_BYTES} bytes`);
    if (BAD_KEY.test(key))
      throw new HubError(
        "ArgumentInvalid",
        `${where}: property name '${key.slice(0, 64)}' contains '.', '$', a space or a control character`,
      );
    if (isJsonObject(value)) checkKeys(value, `${where}.${key}`, depth + 1);
    else if (Array.isArray(value)) checkArray(value, `${where}.${key}`, depth + 1);
  }
}

function checkArray(items: Json[], where: string, depth: number): void {
  if (depth > MAX_DEPTH)
    throw new HubError("ArgumentInvalid", `${where} nests deeper than ${MAX_DEPTH} levels`);
  for (const item of items) {
    if (isJsonObject(item)) checkKeys(item, where, depth + 1);
    else if (Array.isArray(item)) checkArray(item, where, depth + 1);
  }
}

/** Throws 400 if the section would exceed its size limit. */
export function checkSize(section: JsonObject, which: "tags" | "desired" | "reported"): void {
  const limit = which === "tags" ? TAGS_MAX_BYTES : PROPERTIES_MAX_BYTES;
  const size = sectionSize(section);
  if (size > limit)
    throw new HubError(
      "ArgumentInvalid",
      `Twin ${which} size ${size} bytes exceeds the limit of ${limit} bytes`,
    );
}

const ID = /^[A-Za-z0-9\-:.+%_#*?!(),=@;$']{1,128}$/;

/** Device and module ids: up to 128 characters of IoT Hub's allowed set. */
export function checkId(id: unknown, what: "deviceId" | "moduleId" | "configurationId"): string {
  if (typeof id !== "string" || !ID.test(id))
    throw new HubError("ArgumentInvalid", `${what} '${String(id).slice(0, 64)}' is not a valid id`);
  return id;
}
