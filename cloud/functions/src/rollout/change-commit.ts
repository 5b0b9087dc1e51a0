/**
 * How a change to a site is committed: checked whole, then applied; a refused change leaves
 * nothing (refused before anything is written, or undone), a backend failing half way leaves the
 * change saved for reconcile to finish, and the error says which (ADR 0011).
 */
import { errorMessage, isErrorCode } from "../../../../lib/errors.ts";
import { type ApplyHints, type ApplyProgress, applySite, checkSite } from "./apply.ts";
import type { OnboardStep, RolloutDeps } from "./context.ts";
import { ChangeError, type ChangeOutcome } from "./errors.ts";
import { detachDevice, offboardSite } from "./offboard.ts";
import type { SiteSpec } from "./schemas.ts";
import { type SiteView, siteView } from "./site-view.ts";

/** Applies a site and answers its view. */
export async function applyAndView(
  deps: RolloutDeps,
  spec: SiteSpec,
  progress?: ApplyProgress,
  hints?: ApplyHints,
): Promise<SiteView> {
  const applied = await applySite(deps, spec, progress, hints);
  // The row just written, not read back.
  return siteView(applied.spec, applied.row, applied.routes);
}

/** The error `err` as a change failure with `outcome`, keeping its code, status and issues. */
export function withOutcome(err: unknown, outcome: ChangeOutcome, note: string): ChangeError {
  const e = err as { code?: unknown; status?: unknown; issues?: unknown };
  const code = isErrorCode(e.code) ? e.code : undefined;
  const message = code ? errorMessage(err) : "The rollout service failed; see its log.";
  return new ChangeError(code ?? "RF_ERR_ROLLOUT_INTERNAL", `${message} ${note}`, outcome, {
    // Only a code that reports a peer's status takes the cause's; the others have their own.
    ...(typeof e.status === "number" ? { status: e.status } : {}),
    cause: err,
    ...(Array.isArray(e.issues) ? { issues: e.issues as Array<{ path: string; message: string }> } : {}),
  });
}

/** Like `withOutcome`, but an error without an RF_ERR code (a bug) passes unchanged: its details stay in the log. */
function unlessUnknown(err: unknown, outcome: ChangeOutcome, note: string): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && code.startsWith("RF_ERR_") ? withOutcome(err, outcome, note) : err;
}

const BACKEND_OF_STEP: Record<OnboardStep, string> = {
  device: "IoT Hub",
  module: "IoT Hub",
  "hybrid-connection": "Azure Relay",
  rules: "Azure Relay",
  ledger: "storage",
  ports: "storage",
  twin: "IoT Hub",
  tags: "IoT Hub",
};

/**
 * Checks a change whole, then applies it. A refused change (4xx) leaves nothing: it is refused
 * before anything is written, or, when a race makes a later step refuse it, what it wrote is
 * undone (the previous spec re-applied; a new site offboarded). A backend failing half way
 * (5xx, unreachable) leaves the change saved for reconcile to finish. The error says which.
 */
export async function commitChange(
  deps: RolloutDeps,
  spec: SiteSpec,
  previous: { spec: SiteSpec } | undefined,
  createdDevices: ReadonlySet<string> = new Set(),
  hints?: ApplyHints,
): Promise<SiteView> {
  try {
    await checkSite(deps, spec, hints);
  } catch (err) {
    throw unlessUnknown(err, "nothing-changed", "Nothing was changed.");
  }
  const progress: ApplyProgress = { saved: false };
  try {
    return await applyAndView(deps, spec, progress, hints);
  } catch (err) {
    deps.logger?.warn(
      { siteId: spec.siteId, step: progress.step, saved: progress.saved, err: errorMessage(err) },
      "site change failed",
    );
    if (!progress.saved) throw unlessUnknown(err, "nothing-changed", "Nothing was changed.");
    const status = (err as { status?: unknown }).status;
    const refused = typeof status === "number" && status >= 400 && status < 500;
    if (!refused) {
      const step = progress.step ?? "ledger";
      throw new ChangeError(
        "RF_ERR_ROLLOUT_CHANGE_PENDING",
        `Site ${spec.siteId}: the change is saved, but step "${step}" failed (${BACKEND_OF_STEP[step]}: ${errorMessage(err)}). The next reconcile completes it; repeating the request does too.`,
        "completed-by-reconcile",
        { cause: err },
      );
    }
    try {
      if (previous) await applySite(deps, previous.spec);
      else await offboardSite(deps, spec.siteId, { deviceId: spec.deviceIds[0] ?? spec.siteId });
      // Devices the change added leave again (the previous spec does not name them).
      const added = previous ? spec.deviceIds.filter((d) => !previous.spec.deviceIds.includes(d)) : [];
      for (const d of added) await detachDevice(deps, d, { deleteDevice: createdDevices.has(d) });
    } catch (undoErr) {
      deps.logger?.error({ siteId: spec.siteId, err: errorMessage(undoErr) }, "rolling a change back failed");
      throw withOutcome(
        err,
        "incomplete",
        `Rolling the change back failed as well (${errorMessage(undoErr)}); repeat the previous change or remove the site.`,
      );
    }
    throw withOutcome(err, "rolled-back", "The change was rolled back; nothing of it remains.");
  }
}
