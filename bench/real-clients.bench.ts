/**
 * Real third-party clients through every path, side by side in one run (issue 16's table):
 *
 *   direct · socat, 3 hops, plaintext (`fork`) · socat, 3 hops, TLS on the two relay legs (hop 1
 *   TCP → TLS, hop 2 TLS → TLS, hop 3 TLS → TCP) · Relay Fleet full path as `npm start` runs it
 *   (gateway → relay emulator over wss → relayListener module → target, every part its own
 *   process, the site onboarded through the rollout API).
 *
 * Rows: iperf3 one stream (and CPU seconds per GiB at the two ends: gateway + module, socat hop 1
 * + hop 3), HTTP with a new connection per request (wrk, 16 at once, `Connection: close`, 1 KiB
 * reply; connect-to-first-byte percentiles from bench/lib/connect-probe.ts), HTTP kept alive (wrk,
 * 16), `pgbench -c 16` and `pgbench -C` against a local PostgreSQL server. A row whose tool is not
 * installed is reported as not measured, with the command that installs it.
 *
 * Durations: BENCH_CLIENT_SECONDS (iperf3, wrk; default 10), BENCH_PG_SECONDS (pgbench -c 16;
 * default 30; -C runs a third of it). BENCH_PROFILE_DIR: V8 CPU profiles of the fleet's processes.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { startNodeProcess } from "../sim/child-process.ts";
import { Fleet } from "../sim/fleet.ts";
import { freePort } from "../sim/ports.ts";
import { connectProbe } from "./lib/connect-probe.ts";
import { type PostgresServer, startPostgres } from "./lib/postgres-server.ts";
import { makeCertificate, type SocatChain, startSocatChain } from "./lib/socat-chains.ts";
import { percentile } from "./lib/tcp-probes.ts";
import { cpuWithChildrenOf, findTool, missingNote, run, socatHasOpenssl } from "./lib/tools.ts";
import type { BenchFigure, BenchSection } from "./types.ts";

const SECONDS = Number(process.env.BENCH_CLIENT_SECONDS ?? 10);
const PG_SECONDS = Number(process.env.BENCH_PG_SECONDS ?? 30);
const CONCURRENCY = 16;

interface PathUnderTest {
  name: string;
  host: string;
  iperfPort?: number;
  httpPort?: number;
  pgPort?: number;
  /** The two ends whose CPU is counted ("gateway + module", "hop 1 + hop 3"). */
  endPids: number[];
}

interface PathFigures {
  iperfGbps?: number;
  cpuPerGiB?: number;
  closeRate?: number;
  closeP50?: number;
  closeP99?: number;
  closeFailures?: number;
  keepAliveRate?: number;
  pgTps?: number;
  pgConnectTps?: number;
}

async function cpuOf(pids: number[]): Promise<number | undefined> {
  const values = await Promise.all(pids.map(cpuWithChildrenOf));
  if (values.some((v) => v === undefined)) return undefined;
  return (values as number[]).reduce((a, b) => a + b, 0);
}

async function iperf(iperf3: string, path: PathUnderTest, port: number): Promise<Partial<PathFigures>> {
  const args = ["-c", path.host, "-p", String(port), "-t", String(SECONDS), "-J"];
  await run(iperf3, [...args.slice(0, 4), "-t", "1"], 60_000); // warm-up: JIT, TLS sessions
  const before = await cpuOf(path.endPids);
  const out = JSON.parse(await run(iperf3, args, (SECONDS + 60) * 1000)) as {
    end: { sum_received: { bits_per_second: number; bytes: number } };
  };
  // socat's per-connection children show in the parent's time once reaped.
  await new Promise((r) => setTimeout(r, 500));
  const after = await cpuOf(path.endPids);
  const { bits_per_second: bps, bytes } = out.end.sum_received;
  const result: Partial<PathFigures> = { iperfGbps: bps / 1e9 };
  if (before !== undefined && after !== undefined && path.endPids.length > 0)
    result.cpuPerGiB = (after - before) / (bytes / 2 ** 30);
  return result;
}

function wrkRate(out: string): number {
  const m = /Requests\/sec:\s+([\d.]+)/.exec(out);
  if (!m) throw new Error(`wrk printed no rate: ${out}`);
  return Number(m[1]);
}

async function http(
  wrk: string | undefined,
  path: PathUnderTest,
  port: number,
): Promise<Partial<PathFigures>> {
  const url = `http://${path.host}:${port}/`;
  const result: Partial<PathFigures> = {};
  const probe = await connectProbe(path.host, port, CONCURRENCY, Math.min(5, SECONDS) * 1000);
  result.closeP50 = percentile(probe.firstByteMs, 50);
  result.closeP99 = percentile(probe.firstByteMs, 99);
  result.closeFailures = probe.failures;
  if (!wrk) return result;
  // wrk's default 2 s timeout would count the TLS chain's slow handshakes as no requests at all.
  const base = ["-t", "2", "-c", String(CONCURRENCY), "-d", `${SECONDS}s`, "--timeout", "10s"];
  result.closeRate = wrkRate(
    await run(wrk, [...base, "-H", "Connection: close", url], (SECONDS + 60) * 1000),
  );
  result.keepAliveRate = wrkRate(await run(wrk, [...base, url], (SECONDS + 60) * 1000));
  return result;
}

function pgTps(out: string): number {
  if (/number of transactions actually processed: 0\b/.test(out)) return 0;
  const m = /tps = ([\d.]+) \(without initial connection time\)/.exec(out) ?? /tps = ([\d.]+)/.exec(out);
  if (!m) throw new Error(`pgbench printed no tps: ${out}`);
  return Number(m[1]);
}

async function pg(pgbench: string, path: PathUnderTest, port: number): Promise<Partial<PathFigures>> {
  const base = [
    "-h",
    path.host,
    "-p",
    String(port),
    "-U",
    "postgres",
    "-n",
    "-c",
    String(CONCURRENCY),
    "-j",
    "2",
  ];
  const pooled = pgTps(
    await run(pgbench, [...base, "-T", String(PG_SECONDS), "postgres"], (PG_SECONDS + 120) * 1000),
  );
  const connectSeconds = Math.max(1, Math.round(PG_SECONDS / 3));
  const perTx = pgTps(
    await run(
      pgbench,
      [...base, "-C", "-T", String(connectSeconds), "postgres"],
      (connectSeconds + 120) * 1000,
    ),
  );
  return { pgTps: pooled, pgConnectTps: perTx };
}

async function measurePath(
  path: PathUnderTest,
  tools: { iperf3?: string; wrk?: string; pgbench?: string },
): Promise<PathFigures> {
  process.stderr.write(`bench: real clients through ${path.name}\n`);
  const figures: PathFigures = {};
  const step = (what: string) => process.stderr.write(`bench:   ${path.name}: ${what}\n`);
  if (tools.iperf3 && path.iperfPort) {
    step("iperf3");
    Object.assign(figures, await iperf(tools.iperf3, path, path.iperfPort));
  }
  if (path.httpPort) {
    step("HTTP (connect probe, wrk)");
    Object.assign(figures, await http(tools.wrk, path, path.httpPort));
  }
  if (tools.pgbench && path.pgPort) {
    step("pgbench");
    Object.assign(figures, await pg(tools.pgbench, path, path.pgPort));
  }
  return figures;
}

function ratio(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined || b === 0 ? undefined : a / b;
}

export async function runBenchmark(): Promise<BenchSection> {
  const tools = {
    iperf3: findTool("iperf3"),
    wrk: findTool("wrk"),
    pgbench: findTool("pgbench"),
    socat: findTool("socat"),
    openssl: findTool("openssl"),
    postgres: findTool("postgres"),
  };
  const notes: string[] = [];
  const missing = Object.entries(tools)
    .filter(([, file]) => file === undefined)
    .map(([name]) => name);
  if (missing.length > 0) notes.push(missingNote(missing));
  const socatTls = tools.socat && tools.openssl && socatHasOpenssl(tools.socat);
  if (tools.socat && !socatTls) notes.push("socat has no OpenSSL support: the TLS chain is not measured");

  const dir = mkdtempSync(join(tmpdir(), "relay-fleet-bench-clients-"));
  const cleanups: Array<() => unknown> = [];
  const children: ChildProcess[] = [];
  let fleet: Fleet | undefined;
  try {
    // Targets: iperf3 servers, the 1 KiB HTTP server, PostgreSQL. Each path gets its own iperf3
    // server: one still tearing down the last test (a socat child closing) refuses the next.
    const iperfServer = async (): Promise<number | undefined> => {
      if (!tools.iperf3) return undefined;
      const port = await freePort();
      children.push(spawn(tools.iperf3, ["-s", "-p", String(port), "-B", "127.0.0.1"], { stdio: "ignore" }));
      await new Promise((r) => setTimeout(r, 300));
      return port;
    };
    const iperfPort = await iperfServer();
    const httpServer = await startNodeProcess({ name: "http-1k", script: "bench/lib/http-1k-server.ts" });
    cleanups.push(() => httpServer.stop("SIGTERM"));
    const httpPort = httpServer.ready.port as number;
    let postgres: PostgresServer | undefined;
    if (tools.pgbench && tools.postgres) {
      postgres = await startPostgres();
      cleanups.push(() => postgres?.stop());
      await run(
        tools.pgbench,
        ["-i", "-s", "1", "-q", "-h", "127.0.0.1", "-p", String(postgres.port), "-U", "postgres", "postgres"],
        120_000,
      );
    }
    const targets = { iperf: iperfPort, http: httpPort, pg: postgres?.port };
    // The issue compares pgbench through the tunnel with direct only: no socat chain for it.
    const socatTargets = async () => ({ iperf: await iperfServer(), http: targets.http });

    const paths: PathUnderTest[] = [
      { name: "direct", host: "127.0.0.1", iperfPort, httpPort, pgPort: postgres?.port, endPids: [] },
    ];
    const chainPath = (
      name: string,
      chains: Partial<Record<keyof typeof targets, SocatChain>>,
      ends: boolean,
    ) => {
      return {
        name,
        host: "127.0.0.1",
        iperfPort: chains.iperf?.port,
        httpPort: chains.http?.port,
        pgPort: undefined,
        endPids: ends && chains.iperf ? [chains.iperf.pids[0] as number, chains.iperf.pids[2] as number] : [],
      };
    };
    if (tools.socat) {
      const plain: Partial<Record<keyof typeof targets, SocatChain>> = {};
      for (const [k, port] of Object.entries(await socatTargets()) as Array<
        [keyof typeof targets, number | undefined]
      >) {
        if (port === undefined) continue;
        const chain = await startSocatChain(tools.socat, port);
        cleanups.push(chain.stop);
        plain[k] = chain;
      }
      paths.push(chainPath("socat, 3 hops, plaintext", plain, false));
      if (socatTls && tools.openssl) {
        const cert = makeCertificate(tools.openssl, dir);
        const tls: Partial<Record<keyof typeof targets, SocatChain>> = {};
        for (const [k, port] of Object.entries(await socatTargets()) as Array<
          [keyof typeof targets, number | undefined]
        >) {
          if (port === undefined) continue;
          const chain = await startSocatChain(tools.socat, port, cert);
          cleanups.push(chain.stop);
          tls[k] = chain;
        }
        paths.push(chainPath("socat, 3 hops, TLS", tls, true));
      }
    }

    // The product, as npm start runs it.
    const stateDir = join(dir, "fleet");
    const profileDir = process.env.BENCH_PROFILE_DIR;
    // The fleet's children write a V8 CPU profile each when they exit (sim/child-process.ts).
    if (profileDir) process.env.RELAY_FLEET_CPU_PROF_DIR = profileDir;
    fleet = await Fleet.start({ stateDir, sites: 0, gateways: 1 });
    const limits = { maxConnections: 1000, maxConnectionsPerSource: 1000 };
    const mappings: Record<string, unknown> = {};
    for (const [k, port] of Object.entries({ ...targets, iperf: await iperfServer() })) {
      if (port !== undefined) mappings[k] = { target: `127.0.0.1:${port}`, ...limits };
    }

    const site = await fleet.addSite("bench", mappings);
    delete process.env.RELAY_FLEET_CPU_PROF_DIR;
    const gateway = fleet.gateways[0];
    const module = site.modules[0];
    if (!gateway || !module) throw new Error("fleet has no gateway or module");
    paths.push({
      name: "Relay Fleet full path",
      host: gateway.host,
      iperfPort: site.publicPorts.iperf,
      httpPort: site.publicPorts.http,
      pgPort: site.publicPorts.pg,
      endPids: [gateway.process.child.pid as number, module.process.child.pid as number],
    });

    const results = new Map<string, PathFigures>();
    for (const path of paths) results.set(path.name, await measurePath(path, tools));
    return report(results, notes);
  } finally {
    await fleet?.stop();
    for (const c of cleanups.reverse()) await c();
    for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
}

function report(results: Map<string, PathFigures>, notes: string[]): BenchSection {
  const full = results.get("Relay Fleet full path") ?? {};
  const tls = results.get("socat, 3 hops, TLS");
  const plain = results.get("socat, 3 hops, plaintext");
  const direct = results.get("direct");
  const baselines = (pick: (f: PathFigures) => number | undefined) =>
    [...results.entries()]
      .filter(([name]) => name !== "Relay Fleet full path")
      .flatMap(([name, f]) => {
        const v = pick(f);
        return v === undefined ? [] : [{ name, value: v }];
      });
  const figures: BenchFigure[] = [];
  const push = (
    metric: string,
    value: number | undefined,
    unit: string,
    pick: (f: PathFigures) => number | undefined,
    target?: {
      text: string;
      ratio?: number;
      met: (v: number, r: number | undefined) => boolean;
      vs?: string;
    },
  ) => {
    if (value === undefined) {
      notes.push(`${metric}: not measured`);
      return;
    }
    const extra = target?.ratio !== undefined ? [{ name: `ratio to ${target.vs}`, value: target.ratio }] : [];
    figures.push({
      metric,
      value,
      unit,
      baselines: [...baselines(pick), ...extra],
      ...(target ? { target: target.text, met: target.met(value, target.ratio) } : {}),
    });
  };
  const bulkRatio = ratio(full.iperfGbps, tls?.iperfGbps);
  push("iperf3 one stream, full path", full.iperfGbps, "Gbit/s", (f) => f.iperfGbps, {
    text: ">= 1.0x the TLS socat chain",
    ratio: bulkRatio,
    vs: "TLS socat",
    met: (_v, r) => r !== undefined && r >= 1,
  });
  const cpuRatio = ratio(full.cpuPerGiB, tls?.cpuPerGiB);
  push(
    "CPU s/GiB at the two ends (gateway + module; socat hop 1 + hop 3)",
    full.cpuPerGiB,
    "s/GiB",
    (f) => f.cpuPerGiB,
    {
      text: "<= 1.0x socat's two TLS ends",
      ratio: cpuRatio,
      vs: "TLS socat",
      met: (_v, r) => r !== undefined && r <= 1,
    },
  );
  push(
    "HTTP, new connection per request (wrk, 16 at once, Connection: close, 1 KiB)",
    full.closeRate,
    "req/s",
    (f) => f.closeRate,
    { text: ">= 2500 req/s", met: (v) => v >= 2500 },
  );
  push("connect-to-first-byte p99, new connections, 16 at once", full.closeP99, "ms", (f) => f.closeP99, {
    text: "<= 20 ms",
    met: (v) => v <= 20,
  });
  push("connect-to-first-byte p50, new connections, 16 at once", full.closeP50, "ms", (f) => f.closeP50);
  const kaRatio = ratio(full.keepAliveRate, plain?.keepAliveRate);
  push("HTTP kept alive (wrk, 16)", full.keepAliveRate, "req/s", (f) => f.keepAliveRate, {
    text: ">= 1.0x the plaintext socat chain",
    ratio: kaRatio,
    vs: "plaintext socat",
    met: (_v, r) => r !== undefined && r >= 1,
  });
  const pgRatio = ratio(full.pgTps, direct?.pgTps);
  push(`pgbench -c 16 -T ${PG_SECONDS}, full path`, full.pgTps, "tps", (f) => f.pgTps, {
    text: ">= 0.6x direct",
    ratio: pgRatio,
    vs: "direct",
    met: (_v, r) => r !== undefined && r >= 0.6,
  });
  const pgcRatio = ratio(full.pgConnectTps, direct?.pgConnectTps);
  push(
    "pgbench -C (new connection per transaction), 16 clients, full path",
    full.pgConnectTps,
    "tps",
    (f) => f.pgConnectTps,
    {
      text: "reported (issue: 0.36-0.39x direct today)",
      ratio: pgcRatio,
      vs: "direct",
      met: () => true,
    },
  );
  const failures = [...results.entries()]
    .filter(([, f]) => (f.closeFailures ?? 0) > 0)
    .map(([n, f]) => `${n}: ${f.closeFailures}`);
  if (failures.length > 0) notes.push(`failed connections in the connect probe: ${failures.join("; ")}`);
  notes.push(
    `iperf3 and wrk run ${SECONDS} s per row, pgbench -c 16 ${PG_SECONDS} s; every path against the same targets (iperf3 -s, a Node HTTP server answering 1 KiB, PostgreSQL with fsync off, scale 1) in the same run`,
    "full path: the npm start topology — gateway, relay emulator with TLS on both legs, relayListener module configured through its twin, site onboarded through the rollout API with per-source limits raised to 1000 for the benchmark's 16 clients; all on this machine's cores with the clients",
    "socat TLS chain: hop 1 TCP-LISTEN → OPENSSL, hop 2 OPENSSL-LISTEN → OPENSSL, hop 3 OPENSSL-LISTEN → TCP, each with fork, RSA-2048 self-signed certificate, verify=0; its CPU is hop 1 + hop 3 (the ends that stand where gateway and module stand), children included",
    "concurrent idle tunnels and gateway memory per tunnel: see the Cloud gateway section",
  );
  return { title: "Real clients through the tunnel (issue 16's table)", figures, notes };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  process.stdout.write(`${JSON.stringify(await runBenchmark(), null, 2)}\n`);
  process.exit(0);
}
