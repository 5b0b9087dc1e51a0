/**
 * prom-client's default process and Node.js metrics, minus the three gauges whose names end in
 * `_total` (`nodejs_active_{handles,requests,resources}_total`): a `_total` suffix means a
 * counter in the Prometheus conventions, so `promtool check metrics` rejects them (exit 3).
 * Their values stay visible as the per-type gauges without the suffix (`nodejs_active_handles`
 * and so on) summed over `type`.
 */
import { collectDefaultMetrics, type Registry } from "prom-client";

export const DROPPED_DEFAULT_METRICS = [
  "nodejs_active_handles_total",
  "nodejs_active_requests_total",
  "nodejs_active_resources_total",
] as const;

export function collectStandardDefaultMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  for (const name of DROPPED_DEFAULT_METRICS) registry.removeSingleMetric(name);
}
