/**
 * Typed errors with stable codes (`RF_ERR_<AREA>_<WHAT>`), listed in docs/errors.md.
 * Callers and tests match on `code`, never on the message text: two copies of this library can
 * coexist in one process (a CLI loading a plugin, say), so `instanceof` is not reliable.
 */
export class RelayFleetError extends Error {
  /** Stable machine-readable code, never reused for another meaning. */
  readonly code: string;
  /** HTTP status to answer with, when the error is raised while serving a request. */
  readonly status?: number;
  /** WebSocket close code to close with, when the error is raised on a WebSocket. */
  readonly closeCode?: number;

  constructor(
    code: string,
    message: string,
    options: { status?: number; closeCode?: number; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "RelayFleetError";
    this.code = code;
    if (options.status !== undefined) this.status = options.status;
    if (options.closeCode !== undefined) this.closeCode = options.closeCode;
  }
}

/** True when `err` carries the given code, whatever copy of this module created it. */
export function hasErrorCode(err: unknown, code: string): boolean {
  return typeof err === "object" && err !== null && (err as { code?: unknown }).code === code;
}

/** Message of any thrown value, for logs and reported properties. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
