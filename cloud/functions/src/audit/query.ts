/**
 * The audit route's query (`GET /api/audit?site=&since=&limit=`), validated with zod: a bad value
 * is a 400 `RF_ERR_AUDIT_INVALID_QUERY` that names the parameter and says what it takes.
 */
import { z } from "zod";
import { parseSince, SINCE_RULE } from "../../../../lib/audit/since.ts";
import { RelayFleetError } from "../../../../lib/errors.ts";
import { siteIdSchema } from "../../../../lib/ledger/schema.ts";
import type { AuditSelection } from "./records.ts";

export const AUDIT_DEFAULT_LIMIT = 200;
export const AUDIT_MAX_LIMIT = 1000;

const auditQuerySchema = z
  .object({
    site: siteIdSchema.optional(),
    since: z.string().max(64).optional(),
    limit: z
      .string()
      .regex(/^\d{1,4}$/, `must be an integer from 1 to ${AUDIT_MAX_LIMIT}`)
      .transform(Number)
      .pipe(z.number().int().min(1).max(AUDIT_MAX_LIMIT))
      .optional(),
    // The function key may come as ?code= (the Functions host reads it; nothing to do here).
    code: z.string().optional(),
  })
  .strict();

/** Parses the query; `now` fixes "15m"-style spans for tests. */
export function parseAuditQuery(query: URLSearchParams, now = Date.now()): AuditSelection {
  const raw: Record<string, string> = {};
  for (const [k, v] of query) raw[k] = v;
  const parsed = auditQuerySchema.safeParse(raw);
  const issues = parsed.success
    ? []
    : parsed.error.issues.map((i) => ({
        path: i.path.join(".") || "(query)",
        message: i.code === "unrecognized_keys" ? `unknown parameter(s) ${i.keys.join(", ")}` : i.message,
      }));
  let since: Date | undefined;
  if (raw.since !== undefined) {
    since = parseSince(raw.since, now);
    if (!since) issues.push({ path: "since", message: `must be ${SINCE_RULE}` });
  }
  if (!parsed.success || issues.length > 0)
    throw Object.assign(
      new RelayFleetError(
        "RF_ERR_AUDIT_INVALID_QUERY",
        `Bad audit query: ${issues.map((i) => `${i.path} ${i.message}`).join("; ")}`,
      ),
      { issues },
    );
  return {
    site: parsed.data.site,
    since,
    limit: parsed.data.limit ?? AUDIT_DEFAULT_LIMIT,
  };
}
