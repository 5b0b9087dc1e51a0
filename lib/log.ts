import pino, { type Logger, type LoggerOptions } from "pino";

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

const SECRET_IN_TEXT = /(sb-hc-token=|SharedAccessSignature |SharedAccessKey=|sig=)[^&;\s"]+/gi;

/** Masks secrets that appear inside free text (URLs, connection strings, error messages). */
export function redactSecrets(text: string): string {
  return text.replace(SECRET_IN_TEXT, "$1[REDACTED]");
}

export type { Logger };

/**
 * Creates the JSON logger every part uses. `destination` defaults to stdout; tests pass a stream
 * to assert on log content. LOG_LEVEL sets the level (default info).
 */
export function createLogger(
  name: string,
  options: { level?: string; destination?: NodeJS.WritableStream } = {},
): Logger {
  const opts: LoggerOptions = {
    name,
    level: options.level ?? process.env.LOG_LEVEL ?? "info",
    redact: { paths: REDACTED_PATHS, censor: "[REDACTED]" },
    formatters: { level: (label) => ({ level: label }) },
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
