/**
 * Environment variables, read the same way by every part (the module, the gateway, the Functions
 * app, the CLI): one zod schema per part built from these helpers, validated once at start, and a
 * refusal that names each bad variable. Only numbers are echoed in a refusal: a text variable may
 * hold a connection string.
 *
 * Each schema is also its part's documentation: every variable is wrapped in {@link documented}
 * (its description in the schema's metadata), and {@link describeEnv} lists them, refusing a
 * schema with a variable nobody described (test/unit/env.test.ts runs it over every part).
 */
import { z } from "zod";
import { type ErrorCode, RelayFleetError } from "./errors.ts";

/** What a variable means; a part may add its own fields (the Functions app: where it is set). */
export interface EnvDoc {
  description: string;
}

/** `schema` with its documentation attached (zod metadata, read back by {@link describeEnv}). */
export function documented<T extends z.ZodType, M extends EnvDoc>(schema: T, doc: M): T {
  return schema.meta({ ...(doc as EnvDoc & Record<string, unknown>) });
}

/** A variable of a documented schema: its name and documentation. */
export type DescribedVariable<M extends EnvDoc = EnvDoc> = { name: string } & M;

/**
 * Every variable `schema` reads, with its documentation. Throws naming the first variable
 * without a description: a schema is the documentation of its part's environment.
 */
export function describeEnv<M extends EnvDoc = EnvDoc>(schema: z.ZodObject): Array<DescribedVariable<M>> {
  return Object.entries(schema.shape).map(([name, field]) => {
    const doc = (field as z.ZodType).meta() as Partial<M> | undefined;
    if (typeof doc?.description !== "string" || doc.description.trim() === "")
      throw new Error(`environment variable ${name} is not documented (no description)`);
    return { ...(doc as M), name };
  });
}

/** Log levels `LOG_LEVEL` takes (pino's, and `silent`). */
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

/** `LOG_LEVEL`, shared by every part's schema (lib/log.ts reads it through this). */
export const logLevelEnv = documented(
  z
    .enum(["", ...LOG_LEVELS], { error: `must be one of ${LOG_LEVELS.join(", ")}` })
    .optional()
    .transform((v) => (v === "" ? undefined : v)),
  { description: `log level: ${LOG_LEVELS.join(", ")} (default info)` },
);

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
