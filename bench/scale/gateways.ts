/**
 * After the S3 onboarding (bench/scale/onboarding.ts): the onboarded sites online at the relay
 * through the load generator (namespace occupancy against its connection quota), then 5 gateways
 * following the ledger of the onboarded sites' routes: rows read per gateway per minute at steady
 * state against the rows changed in that minute, and a gateway's memory and CPU with the routes
 * loaded.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { LoadGeneratorConfig } from "../../sim/load-generator/main.ts";
import type { BenchFigure, BenchSection } from "../types.ts";
import { type BenchChild, startBenchChild } from "./child.ts";
import type { OnboardingRun } from "./onboarding.ts";
import { machineLoad, sampleProc, watchProc } from "./proc-usage.ts";

const GATEWAYS = 5;
const progress = (what: string) => process.stderr.write(`scale: ${what}\n`);
/** Sites put online at the relay: one namespace holds 5,000 connections, 2 per site. */
const RELAY_SITES = Number(process.env.BENCH_SCALE_RELAY_SITES ?? 2_000);
/** The gateways' default poll (LEDGER_RELOAD_INTERVAL_MS): further apart than the 15 s re-read window (ADR 0015). */
const POLL_MS = 30_000;
const STEADY_MINUTES = 2;

interface RelaySite {
  endpoint: string;
  hybridConnection: string;
  keyName: string;
  key: string;
}

function relaySites(run: OnboardingRun, limit: number): RelaySite[] {
  const out: RelaySite[] = [];
  for (const device of run.hub.hub.listDevices()) {
    if (out.length >= limit) break;
    const deviceId = String(device.deviceId);
    let relay: Record<string, unknown> | undefined;
    try {
      relay = run.hub.hub.module(deviceId, "relayListener").twin.desired.relay as
        | Record<string, unknown>
        | undefined;
    } catch {
      continue;
    }
    if (!relay || typeof relay.sasKey !== "string") continue;
    out.push({
      endpoint: String(relay.endpoint),
      hybridConnection: String(relay.hybridConnection),
      keyName: String(relay.sasKeyName),
      key: relay.sasKey,
    });
  }
  return out;
}

async function metricsOf(adminPort: number): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line.startsWith("gateway_")) continue;
    const i = line.lastIndexOf(" ");
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

const sum = (m: Map<string, number>, prefix: string) =>
  [...m].filter(([k]) => k.startsWith(prefix)).reduce((n, [, v]) => n + v, 0);

export async function gatewaysSection(run: OnboardingRun): Promise<BenchSection> {
  const figures: BenchFigure[] = [];
  const notes: string[] = [];
  const dir = mkdtempSync(join(tmpdir(), "bench-scale-gw-"));
  const children: BenchChild[] = [];
  try {
    // The sites online at the relay (what exists on main: one namespace, no spreading yet).
    const list = relaySites(run, Math.min(RELAY_SITES, run.siteIds.length));
    const config: LoadGeneratorConfig = {
      statusEveryMs: 1_000,
      sites: { channels: 2, startPerSecond: 200, list },
    };
    writeFileSync(join(dir, "sites.json"), JSON.stringify(config));
    const gen = startBenchChild("sim/load-generator/main.ts", [join(dir, "sites.json")], {});
    children.push(gen);
    progress(`putting ${list.length} sites online at the relay`);
    await gen.seen("ready", 600_000);
    progress("load generator ready");
    let online = 0;
    for (let i = 0; i < 60 && online < list.length * 2; i++) {
      online = Number((await gen.waitFor("status", 10_000)).channelsOnline);
    }
    const genUsage = sampleProc(gen.pid);
    const relayStats = run.relay.stats();
    const listeners = relayStats.listeners;
    const quota = 5_000;
    figures.push(
      {
        metric: `relay namespace: connections held by ${list.length} sites (2 channels each)`,
        value: listeners,
        unit: "connections",
        baselines: [{ name: "namespace quota", value: quota }],
        target: "<= 80 % of the quota per namespace",
        met: listeners <= quota * 0.8,
      },
      {
        metric: "namespace occupancy",
        value: Number(((100 * listeners) / quota).toFixed(1)),
        unit: "%",
        target: "<= 80 %",
        met: listeners <= quota * 0.8,
      },
    );
    notes.push(
      `Relay: listen attempts refused over the namespace quota: ${relayStats.refusedOverNamespaceQuota ?? 0}.`,
      `Relay: ${list.length} of the ${run.siteIds.length} onboarded sites online through the load generator (lib/hyco listeners answering tunnels with an echo), ${online} channels online, ${Math.round(genUsage?.rssMb ?? 0)} MiB RSS in one process. Spreading sites over namespaces is not on main yet, so every site is in one namespace: ${run.siteIds.length} sites would need ${Math.ceil((run.siteIds.length * 2) / (quota * 0.8))} namespaces at 80 % of 5,000 connections (2 listener channels a site, standbys not counted).`,
    );

    // 5 gateways on the ledger of every onboarded site.
    progress(`${online} channels online; starting ${GATEWAYS} gateways`);
    const gateways: Array<{ child: BenchChild; adminPort: number }> = [];
    const loadStarted = Date.now();
    // Started together, as a scale set would start them.
    const starting = Array.from({ length: GATEWAYS }, (_, g) => {
      const child = startBenchChild("cloud/gateway/src/main.ts", [], {
        LEDGER_CONNECTION_STRING: run.azurite.connectionString,
        GATEWAY_RELAY_AUTH: "sas",
        LEDGER_RELOAD_INTERVAL_MS: String(POLL_MS),
        GATEWAY_BIND_HOST: `127.0.0.${2 + g}`,
        GATEWAY_HEALTH_HOST: "127.0.0.1",
        GATEWAY_HEALTH_PORT: "0",
        GATEWAY_INSTANCE_ID: `bench-gw-${g}-${randomBytes(3).toString("hex")}`,
        LOG_LEVEL: "info",
      });
      children.push(child);
      return (async () => {
        const admin = await child.seen("admin-listening", 300_000);
        await child.seen("started", 600_000);
        return { child, adminPort: Number(admin.port) };
      })();
    });
    gateways.push(...(await Promise.all(starting)));
    const loadSeconds = (Date.now() - loadStarted) / 1_000;
    // Settle: every gateway's first full read done and a poll past it.
    await new Promise((r) => setTimeout(r, POLL_MS * 2));
    const first = gateways[0];
    if (!first) throw new Error("no gateway");
    progress("gateways loaded; one minute of steady state");
    const before = await Promise.all(gateways.map((g) => metricsOf(g.adminPort)));
    const watch = watchProc(first.child.pid);
    // One minute of steady state with a few changes: sites onboarded through the rollout API.
    const changesWanted = 5 * STEADY_MINUTES;
    const started = Date.now();
    for (let i = 0; i < changesWanted; i++) {
      await fetch(`${run.rollout.url}/api/sites`, {
        method: "POST",
        headers: { "x-functions-key": run.rollout.functionKey, "content-type": "application/json" },
        body: JSON.stringify({ siteId: `steady-${i}` }),
      });
      await new Promise((r) => setTimeout(r, (STEADY_MINUTES * 60_000) / changesWanted - 200));
    }
    const rest = STEADY_MINUTES * 60_000 - (Date.now() - started);
    if (rest > 0) await new Promise((r) => setTimeout(r, rest));
    const minutes = (Date.now() - started) / 60_000;
    const after = await Promise.all(gateways.map((g) => metricsOf(g.adminPort)));
    const usage = watch.stop();
    const rowsChanged = (changesWanted * 3) / minutes; // a site row and two route rows each, per minute
    const perGateway = after.map(
      (m, i) =>
        (sum(m, "gateway_ledger_rows_read_total") -
          sum(before[i] ?? new Map(), "gateway_ledger_rows_read_total")) /
        minutes,
    );
    const worst = Math.max(...perGateway);
    const routes = after[0]?.get("gateway_routes") ?? 0;
    figures.push(
      {
        metric: "ledger rows read per gateway per minute at steady state (worst of 5)",
        value: Number(worst.toFixed(1)),
        unit: "rows/min",
        baselines: [
          { name: "rows changed per minute", value: Number(rowsChanged.toFixed(1)) },
          { name: "routes", value: routes },
        ],
        target: "<= 2 × the changes",
        met: worst <= 2 * rowsChanged,
      },
      {
        metric: `gateway RSS with ${routes} routes loaded`,
        value: Number(usage.rssMb.toFixed(0)),
        unit: "MiB",
      },
      {
        metric: `gateway CPU at steady state with ${routes} routes`,
        value: Number(usage.meanCpuPercent.toFixed(1)),
        unit: "% of a core",
      },
      {
        metric: `5 gateways started and loaded ${routes} routes`,
        value: Number(loadSeconds.toFixed(1)),
        unit: "s",
      },
    );
    const m0 = after[0] ?? new Map();
    notes.push(
      `Gateways: ${GATEWAYS} processes, ledger poll every ${POLL_MS / 1000} s; first gateway: routes ${routes}, listening ports ${sum(m0, "gateway_listening_ports")}, unbound ${sum(m0, "gateway_ports_unbound")} (a process may hold 20,000 file descriptors here, so a gateway cannot bind 20,000 ports on this machine). Rows read per gateway per minute: ${perGateway.map((v) => v.toFixed(0)).join(", ")}; ${rowsChanged.toFixed(1)} rows changed per minute (${changesWanted} sites onboarded through the rollout API over ${minutes.toFixed(1)} min). Machine: ${machineLoad()}.`,
    );
    return { title: "Relay and gateways", figures, notes };
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    rmSync(dir, { recursive: true, force: true });
  }
}
