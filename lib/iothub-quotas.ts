/**
 * IoT Hub's published throttles ("IoT Hub quotas and throttling": operations per SKU tier and
 * unit count), in one place for the IoT Hub emulator, which enforces them, and the rollout, which
 * paces itself by them (issue 18). The emulator's README has the table with its sources.
 */
import { type HubSku, hubNewConnectionsPerSecond } from "./hub-fleet-size.ts";

export type QuotaClass =
  | "registry"
  | "connect"
  | "twinRead"
  | "twinUpdate"
  | "query"
  | "configurations"
  | "d2c";

export { HUB_SKUS, type HubSku, hubSkuSchema } from "./hub-fleet-size.ts";

/** Operations allowed per second for a class (the table's per-minute figures divided by 60). */
export type HubRates = Record<QuotaClass, number>;

/** The published throttles for `sku` with `units` units, in operations per second. */
export function hubRates(sku: HubSku, units: number): HubRates {
  const u = Math.max(1, Math.floor(units));
  const tier = sku.endsWith("3") ? 3 : sku.endsWith("2") ? 2 : 1;
  if (tier === 3)
    return {
      registry: (5_000 * u) / 60,
      connect: hubNewConnectionsPerSecond(sku, u),
      twinRead: 6_000 * u,
      twinUpdate: 3_000 * u,
      query: (1_000 * u) / 60,
      configurations: (20 * u) / 60,
      d2c: 6_000 * u,
    };
  if (tier === 2)
    return {
      registry: (100 * u) / 60,
      connect: hubNewConnectionsPerSecond(sku, u),
      twinRead: 120 * u,
      twinUpdate: 60 * u,
      query: (20 * u) / 60,
      configurations: (20 * u) / 60,
      d2c: 120 * u,
    };
  // Free, B1 and S1: "higher of 100/s or 12/s per unit" and the like.
  return {
    registry: (100 * u) / 60,
    connect: hubNewConnectionsPerSecond(sku, u),
    twinRead: Math.max(100, 10 * u),
    twinUpdate: Math.max(50, 5 * u),
    query: (20 * u) / 60,
    configurations: (20 * u) / 60,
    d2c: Math.max(100, 12 * u),
  };
}

/** A bucket holds a minute's budget for per-minute classes and a second's for the others. */
export const PER_MINUTE: ReadonlySet<QuotaClass> = new Set(["registry", "query", "configurations"]);

/** Operations one burst may take (a full bucket): a minute's budget or a second's, by class. */
export function burstOf(cls: QuotaClass, perSecond: number): number {
  return Math.max(1, PER_MINUTE.has(cls) ? perSecond * 60 : perSecond);
}
