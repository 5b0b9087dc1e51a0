/**
 * Each relay module's IoT Hub reconnect phase (ADR 0031): the k-th module the fleet onboards gets
 * `evenPhase(k)`, k a fleet-wide ordinal from the ledger's counter (lib/ledger/ordinals.ts), and
 * keeps it for good: a module twin that already carries a valid phase keeps it on every
 * re-apply, so converging a site takes no ordinal and writes nothing new. Only a device whose
 * twin has none (a new device, or a site from before ADR 0031) takes one, all of a site's in one
 * block, or from the block its onboarding batch reserved (`ApplyHints.ordinals`).
 */
import { evenPhase } from "../../../../lib/backoff.ts";
import { HUB_PHASE_COUNTER, type OrdinalCounters } from "../../../../lib/ledger/index.ts";
import { HubReconnectSchema } from "../../../../lib/twin/index.ts";
import type { JsonObject } from "./hub.ts";

/** The phase a desired document already gives its module, if it is a valid one. */
export function assignedPhase(desired: JsonObject | undefined): number | undefined {
  const parsed = HubReconnectSchema.safeParse(desired?.hubReconnect);
  return parsed.success ? parsed.data.phase : undefined;
}

/**
 * The phase of every device of a site: the one its twin has, else its reserved ordinal's, else
 * one from a block taken now for all the devices still without (one counter take, or none).
 */
export async function reconnectPhases(
  counters: OrdinalCounters,
  deviceIds: readonly string[],
  currentDesired: (deviceId: string) => JsonObject | undefined,
  reserved?: ReadonlyMap<string, number>,
): Promise<Map<string, number>> {
  const phases = new Map<string, number>();
  const without: string[] = [];
  for (const deviceId of deviceIds) {
    const kept = assignedPhase(currentDesired(deviceId));
    const ordinal = reserved?.get(deviceId);
    if (kept !== undefined) phases.set(deviceId, kept);
    else if (ordinal !== undefined) phases.set(deviceId, evenPhase(ordinal));
    else without.push(deviceId);
  }
  if (without.length > 0) {
    const first = await counters.takeOrdinals(HUB_PHASE_COUNTER, without.length);
    for (const [i, deviceId] of without.entries()) phases.set(deviceId, evenPhase(first + i));
  }
  return phases;
}
