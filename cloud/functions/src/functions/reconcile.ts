/** Timer trigger: reconcile the fleet and log the drift report (every 5 minutes by default). */
import { app, type InvocationContext, type Timer } from "@azure/functions";
import { getRollout } from "../config.ts";

export const RECONCILE_FUNCTION = "reconcile";
/** NCRONTAB (seconds first); `%RECONCILE_SCHEDULE%` lets app settings override it. */
export const RECONCILE_SCHEDULE = "%RECONCILE_SCHEDULE%";

export async function reconcileHandler(_timer: Timer, context: InvocationContext): Promise<void> {
  const report = await (await getRollout()).reconcile();
  context.log(JSON.stringify({ msg: "drift report", sites: report.sites, items: report.items }));
}

app.timer(RECONCILE_FUNCTION, { schedule: RECONCILE_SCHEDULE, handler: reconcileHandler });
