import pino, { type Logger, type LoggerOptions } from "pino";
import { logLevelEnv } from "./env.ts";

/**
 * Paths that must never reach a log line. Keys and tokens travel in config objects, HTTP headers
 * and relay URLs; pino's redaction removes them by path before serialisation, so a careless
 * `log.info({ config })` stays safe.
 */
export const REDACTED_PATHS = [
  "sasKey",
  "*.sasKey",
  "*.*.sasKey",
  "key",
  "*.key",
  "primaryKey",
  "*.primaryKey",
  "*.*.primaryKey",
  "secondaryKey",
  "*.secondaryKey",
  "*.*.secondaryKey",
  "token",
  "*.token",
  "connectionString",
  "*.connectionString",
  "password",
  "*.password",
  "headers.authorization",
  "headers.serviceBusAuthorization",
  'headers["servicebusauthorization"]',
  "*.headers.authorization",
];

const SECRET_IN_TEXT =
  /(sb-hc-token=|SharedAccessSignature |SharedAccessKey=|AccountKey=|sig=|[?&]code=|x-functions-key: ?)[^&;\s"',]+/gi;

/** Masks secrets that appear inside free text (URLs, connection strings, error messages). */
export function redactSecrets(text: string): string {
  return text.replace(SECRET_IN_TEXT, "$1[REDACTED]");
}

/**
 * Field names whose values are secrets wherever they sit (`sendKey`, `manageKey`, `sasKey`,
 * `serviceConnectionString`, `x-functions-key`, …). Names that only end like one but hold an
 * identifier stay readable (`keyFingerprint`, `keyName` do not match; table keys are listed).
 */
const SECRET_FIELD = /(key|secret|password|token|connectionstring|authorization|signature|sig)$/i;
const NOT_SECRET_FIELD = /^(partitionKey|rowKey|keyType)$/i;

/**
 * A copy of `value` with secret-named fields masked at any depth and every string passed through
 * `redactSecrets` (an `{ err: message }` string carries a URL with its token as often as an Error).
 * Errors become their serialised form, masked the same way.
 */
export function redactDeep(value: unknown, depth = 0, seen = new WeakSet<object>()): unknown {
  if (typeof value === "string") return redactSecrets(value);
  if (typeof value !== "object" || value === null) return value;
  if (depth > 8 || seen.has(value)) return "[…]";
  seen.add(value);
  if (value instanceof Error) return redactDeep(pino.stdSerializers.err(value), depth + 1, seen);
  if (Buffer.isBuffer(value)) return `[${value.length} bytes]`;
  if (Array.isArray(value)) return value.map((v) => redactDeep(v, depth + 1, seen));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] =
      SECRET_FIELD.test(k) && !NOT_SECRET_FIELD.test(k) && v !== undefined && v !== null && v !== ""
        ? "[REDACTED]"
        : redactDeep(v, depth + 1, seen);
  }
  return out;
}

export type { Logger };

/**
 * Creates the JSON logger every part uses. `destination` defaults to stdout; tests pass a stream
 * to assert on log content. LOG_LEVEL sets the level (default info), read through the schema field
 * every part's environment schema includes (lib/env.ts): a bad value falls back to info here and is
 * refused, named, by the part's own validation at start.
 */
export function createLogger(
  name: string,
  options: { level?: string; destination?: NodeJS.WritableStream } = {},
): Logger {
  const opts: LoggerOptions = {
    name,
    level: options.level ?? logLevelEnv.safeParse(process.env.LOG_LEVEL).data ?? "info",
    redact: { paths: REDACTED_PATHS, censor: "[REDACTED]" },
    formatters: {
      level: (label) => ({ level: label }),
      // Every logged object, at any depth: secret-named fields and secrets inside strings.
      log: (object) => redactDeep(object) as Record<string, unknown>,
    },
    hooks: {
      // Error messages and free-text fields can carry a URL with sb-hc-token=…; mask those too.
      logMethod(args, method) {
        const masked = args.map((arg) => (typeof arg === "string" ? redactSecrets(arg) : arg));
        method.apply(this, masked as Parameters<typeof method>);
      },
    },
    serializers: {
      err: (err: unknown) => {
        const s = pino.stdSerializers.err(err as Error);
        if (s && typeof s.message === "string") s.message = redactSecrets(s.message);
        if (s && typeof s.stack === "string") s.stack = redactSecrets(s.stack);
        return s;
      },
    },
  };
  return options.destination ? pino(opts, options.destination as pino.DestinationStream) : pino(opts);
}
