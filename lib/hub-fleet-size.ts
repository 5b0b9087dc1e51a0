/**
 * The figures the fleet's modules size their IoT Hub reconnects by (ADR 0027): the fleet's size,
 * as the deployment tells the modules (`HUB_FLEET_SIZE`), and the new device connections a second
 * they may open together (`HUB_CONNECTS_PER_SECOND`), from the hub's SKU and units. One place, so
 * `relay-fleet deployment apply`, the simulation and the rollout's status agree.
 */
import { z } from "zod";

export const HUB_SKUS = ["F1", "B1", "B2", "B3", "S1", "S2", "S3"] as const;
export const hubSkuSchema = z.enum(HUB_SKUS);
export type HubSku = z.infer<typeof hubSkuSchema>;

/**
 * IoT Hub's new device connections a second ("IoT Hub quotas and throttling"): F1, B1 and S1 the
 * higher of 100 or 12 per unit; B2/S2 120 per unit; B3/S3 6,000 per unit. The IoT Hub emulator
 * enforces the same table (sim/iothub-emulator/quotas.ts; a unit test keeps them equal).
 */
export function hubNewConnectionsPerSecond(sku: HubSku, units: number): number {
  const u = Math.max(1, Math.floor(units));
  if (sku.endsWith("3")) return 6_000 * u;
  if (sku.endsWith("2")) return 120 * u;
  return Math.max(100, 12 * u);
}

/** The share of that quota the relay modules use: 95 %, the rest headroom for other devices. */
export const RELAY_CONNECT_SHARE = 0.95;

/** `HUB_CONNECTS_PER_SECOND` for a hub: 95 % of its new-connection quota (S1 × 1: 95). */
export function relayConnectsPerSecond(sku: HubSku, units: number): number {
  return Math.floor(hubNewConnectionsPerSecond(sku, units) * RELAY_CONNECT_SHARE);
}

/** Room for growth between two applies: the fleet may grow by a quarter before it is re-sized. */
export const FLEET_SIZE_HEADROOM = 1.25;
/**
 * Sizes are rounded up to a multiple of this, so a fleet that grows by a few devices keeps its
 * size: a new size is a new deployment, and a new deployment restarts every module.
 */
export const FLEET_SIZE_STEP = 500;

/**
 * `HUB_FLEET_SIZE` for a fleet of `devices` relay modules: at least `configured` (the operator's
 * figure, a floor) and a quarter more than the devices, rounded up to the next multiple of 500
 * (at least 500). An overestimate only slows a recovery; an underestimate exceeds the quota.
 */
export function sizedFleet(devices: number, configured = 0): number {
  const wanted = Math.max(configured, Math.ceil(devices * FLEET_SIZE_HEADROOM), 1);
  return Math.ceil(wanted / FLEET_SIZE_STEP) * FLEET_SIZE_STEP;
}
