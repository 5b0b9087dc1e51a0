/**
 * After the S3 onboarding (bench/scale/onboarding.ts): the onboarded sites online at the relay
 * through the load generator (namespace occupancy against its connection quota), then 5 gateways
 * following the ledger of the onboarded sites' routes: rows read per gateway per minute at steady
 * state against the rows changed in that minute, and a gateway's memory and CPU with the routes
 * loaded.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { errorMessage } from "../../lib/errors.ts";
import type { BenchFigure, BenchSection } from "../types.ts";
import { type BenchChild, startBenchChild } from "./child.ts";
import { startLoadGenerators } from "./load-generators.ts";
import type { OnboardingRun } from "./onboarding.ts";
import { machineLoad, watchProc } from "./proc-usage.ts";
import { MAX_FILL, NAMESPACE_CONNECTIONS, namespacesFor, SITE_CONNECTIONS } from "./relay-namespaces.ts";

const GATEWAYS = 5;
const progress = (what: string) => process.stderr.write(`scale: ${what}\n`);
/** Sites put online at the relay (default: all onboarded). */
const RELAY_SITES = Number(process.env.BENCH_SCALE_RELAY_SITES ?? Number.POSITIVE_INFINITY);
/**
 * Standby connections each gateway keeps per site (GATEWAY_STANDBY_CONNECTIONS; unset: the
 * gateway's default). A gateway creates a site's pool on its first tunnel (lib/hyco/standby-pools.ts), so an
 * idle fleet holds none and they do not count against a process's 20,000 descriptors here.
 */
const STANDBYS = process.env.BENCH_SCALE_GATEWAY_STANDBYS;
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
  // Every device: the emulator's listing, like the hub's, stops at 1,000 unless told otherwise.
  for (const device of run.hub.hub.listDevices(Number.MAX_SAFE_INTEGER)) {
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
    // Every onboarded site online at the relay, in the namespace the rollout placed it in,
    // from load-generator processes of up to PER_PROCESS sites each (2 sockets a site).
    const list = relaySites(run, Math.min(RELAY_SITES, run.siteIds.length));
    const gens = startLoadGenerators(dir, "sites", {
      statusEveryMs: 1_000,
      sites: { channels: 2, startPerSecond: 200, list },
    });
    children.push(...gens.children);
    progress(`putting ${list.length} sites online at the relay from ${gens.children.length} load generators`);
    await gens.ready(list.length * 20 + 300_000);
    progress("load generators ready");
    let online = 0;
    try {
      await gens.until(
        (st) => (st.channelsOnline ?? 0) >= list.length * 2,
        list.length * 30 + 60_000,
        "every listener channel online",
      );
    } catch (err) {
      notes.push(`Relay: ${errorMessage(err)}.`);
    }
    online = gens.status().channelsOnline ?? 0;
    const genRssMb = gens.rssMb();
    const occupancy = async (when: string) => {
      const stats = await run.relay.stats();
      const worst = Math.max(...stats.map((n) => n.connections));
      const used = stats.filter((n) => n.connections > 0).length;
      const refused = stats.reduce((n, x) => n + x.refusedOverNamespaceQuota, 0);
      figures.push(
        {
          metric: `relay namespaces used by ${list.length} sites (${when})`,
          value: used,
          unit: "namespaces",
          baselines: [{ name: "configured", value: stats.length }],
        },
        {
          metric: `busiest namespace's occupancy (${when})`,
          value: Number(((100 * worst) / NAMESPACE_CONNECTIONS).toFixed(1)),
          unit: "%",
          target: "<= 80 % of its connection quota",
          met: worst <= NAMESPACE_CONNECTIONS * MAX_FILL && refused === 0,
        },
      );
      notes.push(
        `Relay namespaces ${when} (connections held of ${NAMESPACE_CONNECTIONS}: listener control channels and relayed connections): ${stats.map((n, i) => `ns${i} ${n.connections} (${n.listeners} listeners)`).join(", ")}; listens and connects refused over a namespace quota: ${refused}.`,
      );
    };
    await occupancy("listener channels only");
    notes.push(
      `Relay: ${list.length} of the ${run.siteIds.length} onboarded sites online through ${gens.children.length} load-generator processes (light sites answering tunnels as the module does, with an echo), ${online} channels online, ${Math.round(genRssMb)} MiB RSS together. The rollout placed the sites: ${namespacesFor(run.siteIds.length)} namespace(s) at ADR 0025's ${SITE_CONNECTIONS} connections a site (2 listener channels, 16 standbys) to ${MAX_FILL * 100} % of ${NAMESPACE_CONNECTIONS}.`,
    );

    // 5 gateways on the ledger of every onboarded site.
    progress(`${online} channels online; starting ${GATEWAYS} gateways`);
    const gateways: Array<{ child: BenchChild; adminPort: number }> = [];
    const loadStarted = Date.now();
    let loadWatch: ReturnType<typeof watchProc> | undefined;
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
        ...(STANDBYS ? { GATEWAY_STANDBY_CONNECTIONS: STANDBYS } : {}),
        LOG_LEVEL: "info",
      });
      children.push(child);
      // The first gateway's memory and CPU while it reads the ledger and binds its routes.
      if (g === 0) loadWatch = watchProc(child.pid, 250);
      return (async () => {
        const admin = await child.seen("admin-listening", 300_000);
        await child.seen("started", 600_000);
        return { child, adminPort: Number(admin.port) };
      })();
    });
    gateways.push(...(await Promise.all(starting)));
    const loadSeconds = (Date.now() - loadStarted) / 1_000;
    const loading = loadWatch?.stop();
    // Settle: every gateway's first full read done and a poll past it.
    await new Promise((r) => setTimeout(r, POLL_MS * 2));
    await occupancy(`with ${GATEWAYS} gateways started`);
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
      {
        metric: `gateway peak RSS while loading ${routes} routes`,
        value: Number((loading?.peakRssMb ?? 0).toFixed(0)),
        unit: "MiB",
      },
      {
        metric: `gateway CPU while loading ${routes} routes (start to all routes served)`,
        value: Number((loading?.meanCpuPercent ?? 0).toFixed(1)),
        unit: "% of a core",
        baselines: [{ name: "CPU seconds", value: Number((loading?.cpuSeconds ?? 0).toFixed(1)) }],
      },
    );
    const m0 = after[0] ?? new Map();
    notes.push(
      `Gateways: ${GATEWAYS} processes, ledger poll every ${POLL_MS / 1000} s; standby connections per site: ${STANDBYS ?? "the gateway's default"} (a pool is created on a site's first tunnel: none here); first gateway: routes ${routes}, listening ports ${sum(m0, "gateway_listening_ports")}, unbound ${sum(m0, "gateway_ports_unbound")}. Each site has one dedicated TCP port (rdp) and one TLS SNI route (ssh) on the shared port 443, so 2N routes take N + 1 listening sockets: a process may hold 20,000 file descriptors here, which 2N dedicated ports would fill at 10,000 sites. Rows read per gateway per minute: ${perGateway.map((v) => v.toFixed(0)).join(", ")}; ${rowsChanged.toFixed(1)} rows changed per minute (${changesWanted} sites onboarded through the rollout API over ${minutes.toFixed(1)} min). Machine: ${machineLoad()}.`,
    );
    return { title: "Relay and gateways", figures, notes };
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    rmSync(dir, { recursive: true, force: true });
  }
}
