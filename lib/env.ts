/**
 * Environment variables, read the same way by every part (the module, the gateway, the Functions
 * app): a zod schema per part built from these helpers, validated once at start, and a refusal
 * that names each bad variable. Only numbers are echoed in a refusal: a text variable may hold a
 * connection string.
 */
import { z } from "zod";
import { type ErrorCode, RelayFleetError } from "./errors.ts";

/** Text; empty counts as unset (a manifest may list a variable with no value). */
export function envText() {
  return z
    .string()
    .optional()
    .transform((v) => (v === "" ? undefined : v));
}

function range(min: number, max: number): string {
  return max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `${min}-${max}`;
}

/** An integer within `min`-`max`, or undefined when unset or empty. */
export function envOptionalInt(min = 0, max = Number.MAX_SAFE_INTEGER) {
  return z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw === "") return undefined;
      const n = Number(raw);
      if (Number.isInteger(n) && n >= min && n <= max) return n;
      ctx.addIssue({
        code: "custom",
        message: `must be an integer ${range(min, max)}`,
        params: { shown: raw },
      });
      return z.NEVER;
    });
}

/** An integer: `fallback` when unset or empty, else within `min`-`max`. */
export function envInt(fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER) {
  return envOptionalInt(min, max).transform((n) => n ?? fallback);
}

/** `NAME problem` per issue (`NAME=value problem` for a number), joined. */
export function describeEnvIssues(error: z.ZodError): string {
  return error.issues
    .map((i) => {
      const shown = (i as { params?: { shown?: unknown } }).params?.shown;
      return `${i.path.join(".")}${typeof shown === "string" ? `=${shown}` : ""} ${i.message}`;
    })
    .join("; ");
}

/** Parses `env` with `schema`, or throws `code` with `prefix` and each bad variable. */
export function parseEnv<S extends z.ZodType>(
  schema: S,
  env: NodeJS.ProcessEnv,
  code: ErrorCode,
  prefix: string,
): z.output<S> {
  const parsed = schema.safeParse(env);
  if (parsed.success) return parsed.data;
  throw new RelayFleetError(code, `${prefix}${describeEnvIssues(parsed.error)}`);
}
