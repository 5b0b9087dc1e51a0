/**
 * The real clients of bench/real-clients.bench.ts and how each is run through one path: iperf3
 * (with the CPU of the path's two ends), wrk with and without keep-alive next to the connect
 * probe, and pgbench pooled and with a connection per transaction.
 */
import { connectProbe } from "./connect-probe.ts";
import { percentile } from "./tcp-probes.ts";
import { cpuWithChildrenOf, run } from "./tools.ts";

/** iperf3 and wrk run this long per row. */
export const SECONDS = Number(process.env.BENCH_CLIENT_SECONDS ?? 10);
/** pgbench -c 16 runs this long (-C a third of it). */
export const PG_SECONDS = Number(process.env.BENCH_PG_SECONDS ?? 30);
/** Connections at once for wrk, pgbench and the connect probe. */
export const CONCURRENCY = 16;

export interface PathUnderTest {
  name: string;
  host: string;
  iperfPort?: number;
  httpPort?: number;
  pgPort?: number;
  /** The two ends whose CPU is counted ("gateway + module", "hop 1 + hop 3"). */
  endPids: number[];
}

export interface PathFigures {
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

/** Runs every client whose tool is installed through one path. */
export async function measurePath(
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
