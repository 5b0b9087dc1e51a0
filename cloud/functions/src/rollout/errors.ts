/** Rollout errors that carry the zod issues of a bad request. */
import type { z } from "zod";
import { RelayFleetError } from "../../../../lib/errors.ts";
import { describeIssues } from "./schemas.ts";

/** A request that failed validation: HTTP 400 with each field path and reason. */
export class ValidationError extends RelayFleetError {
  readonly issues: Array<{ path: string; message: string }>;
  constructor(what: string, error: z.ZodError) {
    const issues = describeIssues(error);
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
  return new RelayFleetError("RF_ERR_ROLLOUT_SITE_NOT_FOUND", `Site ${siteId} does not exist.`, {
    status: 404,
  });
}
