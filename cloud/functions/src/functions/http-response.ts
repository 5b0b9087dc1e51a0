/**
 * Turns rollout results and errors into readable JSON HTTP answers. Unknown errors become 500
 * with a generic sentence (details only in the log), so no stack or secret reaches a client.
 */
import type { HttpResponseInit, InvocationContext } from "@azure/functions";
import { errorMessage } from "../../../../lib/errors.ts";
import { redactSecrets } from "../../../../lib/log.ts";
import { ValidationError } from "../rollout/errors.ts";

export function json(status: number, body: unknown): HttpResponseInit {
  return { status, jsonBody: body, headers: { "content-type": "application/json; charset=utf-8" } };
}

/** Maps an error to its HTTP answer: `RelayFleetError.status` (4xx/5xx) with code and message. */
export function errorResponse(err: unknown, context: InvocationContext): HttpResponseInit {
  const e = err as { code?: unknown; status?: unknown; issues?: unknown; outcome?: unknown };
  const status = typeof e.status === "number" && e.status >= 400 && e.status < 600 ? e.status : 500;
  if (status >= 500) context.error(`request failed: ${redactSecrets(errorMessage(err))}`);
  const known = typeof e.code === "string" && e.code.startsWith("RF_ERR_");
  const body: Record<string, unknown> = {
    error: {
      code: known ? e.code : "RF_ERR_ROLLOUT_INTERNAL",
      message: known ? redactSecrets(errorMessage(err)) : "The rollout service failed; see its log.",
      ...(Array.isArray(e.issues) ? { issues: e.issues } : {}),
      // What became of a failed change: nothing-changed, rolled-back, completed-by-reconcile.
      ...(typeof e.outcome === "string" ? { outcome: e.outcome } : {}),
    },
  };
  return json(status, body);
}

/** Reads a JSON body; a body that is not JSON is a 400 with a clear message. */
export async function readJsonBody(request: { text(): Promise<string> }): Promise<unknown> {
  const text = await request.text();
  if (text.trim() === "") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new ValidationError("request body", [{ path: "(body)", message: "not valid JSON" }]);
  }
}
