/**
 * The whole data path as `npm start` runs it: client → gateway → relay emulator → relayListener
 * module → on-prem echo service, every hop its own process, against the baselines measured in the
 * same run on the same echo service: direct TCP (the limit), a chain of three plain Node TCP
 * forwarders (the same number of hops with no relay protocol), and three socat hops where socat is
 * installed. Reports throughput, setup latency and CPU seconds per GiB of the three middle hops.
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { type RunningProcess, startNodeProcess } from "../sim/child-process.ts";
import { Fleet } from "../sim/fleet.ts";
import { freePort } from "../sim/ports.ts";
import { cpuSecondsOf, type Endpoint, echoThroughput, percentile, setupLatencies } from "./lib/tcp-probes.ts";
import type { BenchFigure, BenchSection } from "./types.ts";

const BULK_BYTES = 128 * 2 ** 20;
const LATENCY_SAMPLES = 300;

interface PathResult {
  name: string;
  mibPerSecond: number;
  p50: number;
  p99: number;
  cpuPerGiB?: number;
}

async function measure(name: string, ep: Endpoint, pids: number[]): Promise<PathResult> {
  await echoThroughput(ep, 8 * 2 ** 20); // warm-up: JIT, TLS sessions, pooled buffers
  const cpuBefore = await Promise.all(pids.map(cpuSecondsOf));
  const mibPerSecond = await echoThroughput(ep, BULK_BYTES);
  const cpuAfter = await Promise.all(pids.map(cpuSecondsOf));
  let cpu: number | undefined;
  if (pids.length > 0 && cpuBefore.every((v) => v !== undefined) && cpuAfter.every((v) => v !== undefined)) {
    const used = cpuAfter.reduce(
      (s, v, i) => (s as number) + (v as number) - (cpuBefore[i] as number),
      0,
    ) as number;
    // The echo transfer moves BULK_BYTES each way through every hop: count both directions.
    cpu = used / ((2 * BULK_BYTES) / 2 ** 30);
  }
  const lat = await setupLatencies(ep, LATENCY_SAMPLES);
  return {
    name,
    mibPerSecond,
    p50: percentile(lat, 50),
    p99: percentile(lat, 99),
    ...(cpu === undefined ? {} : { cpuPerGiB: cpu }),
  };
}

async function nodeChain(targetPort: number): Promise<{ port: number; procs: RunningProcess[] }> {
  const procs: RunningProcess[] = [];
  let port = targetPort;
  for (let i = 0; i < 3; i++) {
    const p = await startNodeProcess({
      name: `tcp-proxy-${i}`,
      script: "bench/lib/tcp-proxy.ts",
      args: [String(port)],
    });
    procs.push(p);
    port = p.ready.port as number;
  }
  return { port, procs };
}

function hasSocat(): boolean {
  try {
    execFileSync("socat", ["-V"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

async function socatChain(targetPort: number): Promise<{ port: number; pids: number[]; stop(): void }> {
  const children: ReturnType<typeof spawn>[] = [];
  let port = targetPort;
  for (let i = 0; i < 3; i++) {
    const listen = await freePort();
    children.push(
      spawn(
        "socat",
        [`TCP-LISTEN:${listen},bind=127.0.0.1,fork,reuseaddr`, `TCP:127.0.0.1:${port},nodelay`],
        {
          stdio: "ignore",
        },
      ),
    );
    port = listen;
  }
  await new Promise((r) => setTimeout(r, 300));
  return {
    port,
    // socat forks a child per connection; the listener's CPU is not the transfer's, so no CPU figure.
    pids: [],
    stop: () => {
      for (const c of children) c.kill("SIGKILL");
    },
  };
}

export async function runBenchmark(): Promise<BenchSection> {
  const stateDir = mkdtempSync(join(tmpdir(), "relay-fleet-bench-"));
  const fleet = await Fleet.start({ stateDir, sites: 1, gateways: 1 });
  const cleanups: Array<() => unknown> = [];
  try {
    const site = [...fleet.sites.values()][0];
    if (!site?.services) throw new Error("no demo site");
    const echoPort = site.services.echoPort;
    const publicPort = site.publicPorts.echo;
    if (publicPort === undefined) throw new Error("no public echo port");
    const gateway = fleet.gateways[0];
    const module = site.modules[0];
    const hopPids = [
      gateway?.process.child.pid,
      fleet.relayProcess.child.pid,
      module?.process.child.pid,
    ].filter((p): p is number => typeof p === "number");

    const results: PathResult[] = [];
    results.push(await measure("direct TCP", { host: "127.0.0.1", port: echoPort }, []));
    const chain = await nodeChain(echoPort);
    cleanups.push(() => Promise.all(chain.procs.map((p) => p.stop("SIGKILL"))));
    results.push(
      await measure(
        "3 Node TCP hops",
        { host: "127.0.0.1", port: chain.port },
        chain.procs.map((p) => p.child.pid as number),
      ),
    );
    if (hasSocat()) {
      const socat = await socatChain(echoPort);
      cleanups.push(socat.stop);
      results.push(await measure("3 socat hops", { host: "127.0.0.1", port: socat.port }, socat.pids));
    }
    const relayed = await measure(
      "gateway → relay → module",
      { host: gateway?.host ?? "127.0.0.1", port: publicPort },
      hopPids,
    );

    const baselines = (pick: (r: PathResult) => number | undefined) =>
      results.flatMap((r) => {
        const v = pick(r);
        return v === undefined ? [] : [{ name: r.name, value: v }];
      });
    const figures: BenchFigure[] = [
      {
        metric: "echo throughput, full path",
        value: relayed.mibPerSecond,
        unit: "MiB/s",
        baselines: baselines((r) => r.mibPerSecond),
      },
      {
        metric: "setup latency p50, full path",
        value: relayed.p50,
        unit: "ms",
        baselines: baselines((r) => r.p50),
      },
      {
        metric: "setup latency p99, full path",
        value: relayed.p99,
        unit: "ms",
        baselines: baselines((r) => r.p99),
      },
    ];
    if (relayed.cpuPerGiB !== undefined) {
      figures.push({
        metric: "CPU of the three middle hops per GiB relayed",
        value: relayed.cpuPerGiB,
        unit: "CPU-s/GiB",
        baselines: baselines((r) => r.cpuPerGiB),
      });
    }
    return {
      title: "Full data path (npm start topology)",
      figures,
      notes: [
        `Echo transfer of ${BULK_BYTES / 2 ** 20} MiB each way at once on one connection; setup = connect, 1 byte out, 1 byte back, over ${LATENCY_SAMPLES} connections.`,
        "The relay emulator runs with TLS (wss) on both legs, as Azure Relay does; the baselines are plain TCP.",
      ],
    };
  } finally {
    for (const c of cleanups) await c();
    await fleet.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  process.stdout.write(`${JSON.stringify(await runBenchmark(), null, 2)}\n`);
  process.exit(0);
}
