/** Timer trigger: reconcile the fleet and log the drift report (every 5 minutes by default). */
import { app, type InvocationContext, type Timer } from "@azure/functions";
import { getRollout } from "../config.ts";
import { loadFunctionsAppSettings } from "../settings.ts";

export const RECONCILE_FUNCTION = "reconcile";
/** NCRONTAB (seconds first), resolved by the host from the `RECONCILE_SCHEDULE` app setting. */
export const RECONCILE_SCHEDULE = "%RECONCILE_SCHEDULE%";

export async function reconcileHandler(_timer: Timer, context: InvocationContext): Promise<void> {
  const report = await (await getRollout()).reconcile();
  context.log(JSON.stringify({ msg: "drift report", sites: report.sites, items: report.items }));
}

// Without the setting the host cannot index the timer, and reconcile, the only retry for a failed
// Event Grid onboarding, would silently never run: refuse to load the app instead, naming it.
loadFunctionsAppSettings(process.env);

app.timer(RECONCILE_FUNCTION, { schedule: RECONCILE_SCHEDULE, handler: reconcileHandler });
