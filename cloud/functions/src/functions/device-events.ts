/**
 * Event Grid trigger for IoT Hub device lifecycle events: `Microsoft.Devices.DeviceCreated`
 * (onboard devices carrying the `relayFleet` tag) and `Microsoft.Devices.DeviceDeleted`
 * (offboard their site). Subscribe the function to the hub with those two event types.
 */
import { app, type EventGridEvent, type InvocationContext } from "@azure/functions";
import { getRollout } from "../config.ts";

export const DEVICE_EVENTS_FUNCTION = "device-lifecycle";

/** Handles one event; never throws (a failed onboarding is logged and retried by reconcile). */
export async function deviceLifecycleHandler(
  event: EventGridEvent,
  context: InvocationContext,
): Promise<void> {
  const rollout = await getRollout();
  const result = await rollout.handleDeviceEvent(event);
  if (result.action === "failed") context.error(`device event ${event.eventType}: ${result.reason}`);
  else
    context.log(
      `device event ${event.eventType} → ${result.action}${result.siteId ? ` ${result.siteId}` : ""}`,
    );
}

app.eventGrid(DEVICE_EVENTS_FUNCTION, { handler: deviceLifecycleHandler });
