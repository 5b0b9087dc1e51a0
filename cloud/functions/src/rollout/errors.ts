/** Rollout errors that carry the zod issues of a bad request. */
import type { z } from "zod";
import { type ErrorCode, type ErrorOptions, RelayFleetError } from "../../../../lib/errors.ts";
import { describeIssues } from "./schemas.ts";

/** A request that failed validation: HTTP 400 with each field path and reason. */
export class ValidationError extends RelayFleetError {
  readonly issues: Array<{ path: string; message: string }>;
  constructor(what: string, error: z.ZodError | Array<{ path: string; message: string }>) {
    const issues = Array.isArray(error) ? error : describeIssues(error);
    const first = issues[0];
    super(
      "RF_ERR_ROLLOUT_INVALID",
      `Invalid ${what}: ${first ? `${first.path}: ${first.message}` : "bad input"}`,
      {
        status: 400,
      },
    );
    this.issues = issues;
  }
}

export function siteNotFound(siteId: string): RelayFleetError {
  return new RelayFleetError("RF_ERR_ROLLOUT_SITE_NOT_FOUND", `Site ${siteId} does not exist.`);
}

/**
 * What a change that failed left behind, as the API reports it in `error.outcome`:
 * - `nothing-changed`: it failed before anything was written (validation, a taken port, IoT Hub
 *   or storage down at the first step);
 * - `rolled-back`: it was refused after writing began and what it wrote was undone;
 * - `completed-by-reconcile`: it is saved, a later step failed on a backend that is down; the next
 *   reconcile (or the same request again) finishes it;
 * - `incomplete`: it was refused after writing began and undoing it failed too (the message says
 *   what to do).
 */
export type ChangeOutcome = "nothing-changed" | "rolled-back" | "completed-by-reconcile" | "incomplete";

/**
 * A failed site change: the cause's code (so its status, from the code's table entry, or the
 * cause's own where the code reports a peer's), with what became of the change.
 */
export class ChangeError extends RelayFleetError {
  readonly outcome: ChangeOutcome;
  readonly issues?: Array<{ path: string; message: string }>;
  constructor(
    code: ErrorCode,
    message: string,
    outcome: ChangeOutcome,
    options: { status?: number; cause?: unknown; issues?: Array<{ path: string; message: string }> } = {},
  ) {
    super(code, message, { status: options.status, cause: options.cause } as ErrorOptions);
    this.outcome = outcome;
    if (options.issues) this.issues = options.issues;
  }
}
