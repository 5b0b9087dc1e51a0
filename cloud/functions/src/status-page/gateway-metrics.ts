/**
 * Live traffic for the status page, read from the gateways' Prometheus `/metrics` (the gateways
 * are the only place that sees every client): live connections, bytes and refusals per route
 * key (`<port>` or `<port>:<hostname>`), summed over every gateway that answered.
 */
import { z } from "zod";
import { parseEnv } from "../../../../lib/env.ts";
import { rolloutSettingsSchema } from "../settings.ts";

export interface RouteTraffic {
  activeConnections: number;
  bytesIn: number;
  bytesOut: number;
  refusals: Record<string, number>;
}

export interface GatewayTraffic {
  /** Gateways asked and gateways that answered. */
  gateways: number;
  gatewaysUp: number;
  routes: Map<string, RouteTraffic>;
}

const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

function labelsOf(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of text.matchAll(LABEL)) out[m[1] as string] = (m[2] as string).replace(/\\(.)/g, "$1");
  return out;
}

/** Adds one gateway's exposition text to `routes`. Lines it does not know are ignored. */
export function addGatewayMetrics(text: string, routes: Map<string, RouteTraffic>): void {
  for (const line of text.split("\n")) {
    if (!line.startsWith("gateway_")) continue;
    const brace = line.indexOf("{");
    const close = line.lastIndexOf("}");
    if (brace < 0 || close < brace) continue;
    const name = line.slice(0, brace);
    if (
      name !== "gateway_connections_active" &&
      name !== "gateway_bytes_total" &&
      name !== "gateway_connections_refused_total"
    )
      continue;
    const value = Number(
      line
        .slice(close + 1)
        .trim()
        .split(" ")[0],
    );
    if (!Number.isFinite(value)) continue;
    const labels = labelsOf(line.slice(brace + 1, close));
    const key = labels.route;
    if (!key) continue;
    let r = routes.get(key);
    if (!r) {
      r = { activeConnections: 0, bytesIn: 0, bytesOut: 0, refusals: {} };
      routes.set(key, r);
    }
    if (name === "gateway_connections_active") r.activeConnections += value;
    else if (name === "gateway_bytes_total") {
      if (labels.direction === "in") r.bytesIn += value;
      else if (labels.direction === "out") r.bytesOut += value;
    } else if (labels.reason && value > 0)
      r.refusals[labels.reason] = (r.refusals[labels.reason] ?? 0) + value;
  }
}

export const gatewayMetricsConfigSchema = z.object({
  urls: z.array(z.url()).max(64),
  token: z.string().optional(),
});
export type GatewayMetricsConfig = z.infer<typeof gatewayMetricsConfigSchema>;

/**
 * Where the gateways' metrics are: `GATEWAY_METRICS_URLS` (comma-separated `/metrics` URLs), or a
 * JSON file `GATEWAY_METRICS_FILE` (`{"urls":[…]}`, re-read each time: the simulation writes it
 * as gateways start). `GATEWAY_ADMIN_TOKEN` is sent as a Bearer token when set.
 */
export async function gatewayMetricsConfig(
  env: NodeJS.ProcessEnv = process.env,
): Promise<GatewayMetricsConfig> {
  const s = parseEnv(
    rolloutSettingsSchema.pick({
      GATEWAY_ADMIN_TOKEN: true,
      GATEWAY_METRICS_FILE: true,
      GATEWAY_METRICS_URLS: true,
    }),
    env,
    "RF_ERR_ROLLOUT_CONFIG",
    "rollout configuration: ",
  );
  const token = s.GATEWAY_ADMIN_TOKEN ? { token: s.GATEWAY_ADMIN_TOKEN } : {};
  if (s.GATEWAY_METRICS_FILE) {
    try {
      const { readFile } = await import("node:fs/promises");
      const parsed = gatewayMetricsConfigSchema.shape.urls.safeParse(
        (JSON.parse(await readFile(s.GATEWAY_METRICS_FILE, "utf8")) as { urls?: unknown }).urls,
      );
      return { urls: parsed.success ? parsed.data : [], ...token };
    } catch {
      return { urls: [], ...token };
    }
  }
  const urls = (s.GATEWAY_METRICS_URLS ?? "")
    .split(",")
    .map((u) => u.trim())
    .filter((u) => z.url().safeParse(u).success);
  return { urls, ...token };
}

/** Scrapes every gateway once (1.5 s each, in parallel); one that does not answer is counted down. */
export async function readGatewayTraffic(config: GatewayMetricsConfig): Promise<GatewayTraffic> {
  const routes = new Map<string, RouteTraffic>();
  const texts = await Promise.all(
    config.urls.map(async (url) => {
      try {
        const res = await fetch(url, {
          signal: AbortSignal.timeout(1_500),
          ...(config.token ? { headers: { authorization: `Bearer ${config.token}` } } : {}),
        });
        return res.ok ? await res.text() : undefined;
      } catch {
        return undefined;
      }
    }),
  );
  let up = 0;
  for (const text of texts) {
    if (text === undefined) continue;
    up++;
    addGatewayMetrics(text, routes);
  }
  return { gateways: config.urls.length, gatewaysUp: up, routes };
}
