/**
 * The live status of a running simulation, read from each process's local metrics endpoint (the
 * modules' and gateways' Prometheus text), never from IoT Hub: a view refreshing every second must
 * not become a loop of throttled twin queries. `relay-fleet status` shows IoT Hub's own picture.
 */
import type { Fleet, PartState } from "./fleet.ts";

export interface SiteStatusLine {
  siteId: string;
  modulesUp: number;
  modules: number;
  listenersOnline: number;
  activeConnections: number;
  totalConnections: number;
  bytesToSite: number;
  bytesFromSite: number;
}

/** One public port: which site's mapping it reaches and where the site's module sends it. */
export interface PortLine {
  siteId: string;
  mapping: string;
  publicPort: number;
  target: string;
  enabled: boolean;
}

export interface FleetStatus {
  at: string;
  gatewaysUp: number;
  gateways: number;
  sites: SiteStatusLine[];
  /** Every process of the simulation: up, restarting after a crash, or stopped; restart counts. */
  parts: PartState[];
  /** Every public port of every site, as the rollout API last answered (mappings added live too). */
  ports: PortLine[];
  /** The address the public ports are on (the first gateway). */
  gatewayHost: string;
}

/** plant-2 before plant-10. */
export const naturalOrder = new Intl.Collator("en", { numeric: true }).compare;

/** The public ports of every site of the fleet, sorted by site (natural order) and mapping name. */
export function portLines(fleet: Fleet): PortLine[] {
  const lines: PortLine[] = [];
  for (const site of fleet.sites.values())
    for (const [mapping, m] of Object.entries(site.mappings))
      if (m.publicPort !== undefined)
        lines.push({
          siteId: site.siteId,
          mapping,
          publicPort: m.publicPort,
          target: m.target,
          enabled: m.enabled,
        });
  return lines.sort((a, b) => naturalOrder(a.siteId, b.siteId) || naturalOrder(a.mapping, b.mapping));
}

/** The port table: public address → site/mapping → the on-prem target its module connects to. */
export function renderPorts(ports: PortLine[], host: string): string {
  if (ports.length === 0) return "no public ports yet";
  const width = Math.max(10, ...ports.map((p) => p.siteId.length));
  const nameWidth = Math.max(4, ...ports.map((p) => p.mapping.length));
  return ports
    .map(
      (p, i) =>
        `  ${(i > 0 && ports[i - 1]?.siteId === p.siteId ? "" : p.siteId).padEnd(width)} ${p.mapping.padEnd(nameWidth)} ${`${host}:${p.publicPort}`.padEnd(21)} →  ${p.target}${p.enabled ? "" : "  (disabled)"}`,
    )
    .join("\n");
}

/** Sums the samples of `metric` in Prometheus text, optionally only those whose labels match. */
export function sumMetric(text: string, metric: string, labelFilter?: (labels: string) => boolean): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(metric)) continue;
    const rest = line.slice(metric.length);
    if (rest[0] !== " " && rest[0] !== "{") continue;
    const labels = rest[0] === "{" ? rest.slice(1, rest.indexOf("}")) : "";
    if (labelFilter && !labelFilter(labels)) continue;
    const value = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (Number.isFinite(value)) sum += value;
  }
  return sum;
}

async function scrape(port: number | undefined): Promise<string | undefined> {
  if (!port) return undefined;
  try {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(1_000) });
    return res.ok ? await res.text() : undefined;
  } catch {
    return undefined;
  }
}

/** Reads every module's and gateway's metrics once. */
export async function readFleetStatus(fleet: Fleet): Promise<FleetStatus> {
  const gatewayTexts = await Promise.all(fleet.gateways.map((g) => scrape(g.adminPort)));
  const sites: SiteStatusLine[] = [];
  const ordered = [...fleet.sites.values()].sort((a, b) => naturalOrder(a.siteId, b.siteId));
  for (const site of ordered) {
    const texts = await Promise.all(site.modules.map((m) => scrape(m?.healthPort)));
    const up = texts.filter((t): t is string => t !== undefined);
    const total = (metric: string, filter?: (labels: string) => boolean) =>
      up.reduce((sum, t) => sum + sumMetric(t, metric, filter), 0);
    sites.push({
      siteId: site.siteId,
      modulesUp: up.length,
      modules: site.modules.length,
      listenersOnline: total("relay_listener_control_channels_online"),
      activeConnections: total("relay_listener_active_connections"),
      totalConnections: total("relay_listener_connections_total"),
      bytesToSite: total("relay_listener_bytes_total", (l) => l.includes(`direction="in"`)),
      bytesFromSite: total("relay_listener_bytes_total", (l) => l.includes(`direction="out"`)),
    });
  }
  return {
    at: new Date().toISOString(),
    gatewaysUp: gatewayTexts.filter(Boolean).length,
    gateways: fleet.gateways.length,
    sites,
    parts: fleet.parts(),
    ports: portLines(fleet),
    gatewayHost: fleet.gateways[0]?.host ?? "127.0.0.1",
  };
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/** One line on the parts: "all 6 up", or which are restarting, down, or came back after a crash. */
export function renderParts(parts: PartState[]): string {
  const notable = parts.filter((p) => p.state !== "up" || p.restarts > 0);
  const up = parts.filter((p) => p.state === "up").length;
  if (notable.length === 0) return `parts: all ${parts.length} up`;
  const described = notable.map((p) => {
    const crash = p.lastCrash ? `, last exit ${p.lastCrash.code} at ${p.lastCrash.at.slice(11, 19)}` : "";
    const what = p.state === "up" ? "up again" : p.state === "restarting" ? "RESTARTING" : "DOWN";
    return `${p.part} ${what} (${p.restarts} restart${p.restarts === 1 ? "" : "s"}${crash})`;
  });
  return `parts: ${up}/${parts.length} up; ${described.join("; ")}`;
}

/** The status as a fixed-width table. */
export function renderStatus(status: FleetStatus): string {
  const rows = status.sites.map((s) =>
    [
      s.siteId.padEnd(12),
      `${s.modulesUp}/${s.modules}`.padEnd(8),
      String(s.listenersOnline).padEnd(10),
      String(s.activeConnections).padEnd(7),
      String(s.totalConnections).padEnd(7),
      bytes(s.bytesToSite).padEnd(11),
      bytes(s.bytesFromSite),
    ].join(" "),
  );
  return [
    `gateways up: ${status.gatewaysUp}/${status.gateways}   updated ${status.at.slice(11, 19)} UTC`,
    renderParts(status.parts),
    "",
    `${"site".padEnd(12)} ${"modules".padEnd(8)} ${"listeners".padEnd(10)} ${"active".padEnd(7)} ${"total".padEnd(7)} ${"to site".padEnd(11)} from site`,
    ...rows,
    "",
    "public ports (gateway → relay → site module → on-prem service):",
    renderPorts(status.ports, status.gatewayHost),
  ].join("\n");
}
