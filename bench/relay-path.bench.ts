/**
 * `npm run bench:relay`: the relay data path on loopback, in one run, three ways:
 *   direct TCP (the limit) · the gateway's code → emulator → the relayListener module's code →
 *   target (the product's own entry points, bench/relay-path-node.ts) ·
 *   hyco-ws on both ends used the straightforward way (the baseline).
 * Each path carries a bulk transfer (throughput, CPU seconds per GiB in the sender and listener
 * processes from the kernel's rusage) and a connect-send-receive-close loop (latency p50/p99).
 * Every role is its own child process (bench/relay-path-node.ts); the relay emulator too.
 * Sizes: BENCH_RELAY_MIB (default 512), BENCH_RELAY_CONNECTS (default 300), BENCH_RELAY_PAUSE_MS
 * (default 5). GATEWAY_* variables reach the gateway role as they would reach the gateway (e.g.
 * GATEWAY_STANDBY_CONNECTIONS).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "../sim/ports.ts";
import type { BenchFigure, BenchSection } from "./types.ts";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "..");
const MIB = 1024 * 1024;
const BULK_BYTES = Number(process.env.BENCH_RELAY_MIB ?? 512) * MIB;
const CONNECTS = Number(process.env.BENCH_RELAY_CONNECTS ?? 300);
/** Pause between connections in the second latency loop: a user's connections are not back to back. */
const PAUSE_MS = Number(process.env.BENCH_RELAY_PAUSE_MS ?? 5);

interface Child {
  proc: ChildProcess;
  line: Record<string, unknown>;
}

const children: ChildProcess[] = [];

/** Environment of every child: the module role reads its allowlist file as the module does. */
const roleEnv: NodeJS.ProcessEnv = {};

function spawnNode(script: string, args: string[], nodeFlags: string[] = []): Promise<Child> {
  // BENCH_RELAY_PROFILE_DIR: V8 CPU profiles of the sender/listener processes, for tuning.
  const prof = process.env.BENCH_RELAY_PROFILE_DIR;
  const profFlags =
    prof && script.endsWith("relay-path-node.ts") ? ["--cpu-prof", `--cpu-prof-dir=${prof}`] : [];
  const proc = spawn(
    process.execPath,
    [...profFlags, ...nodeFlags, "--import", "tsx", join(repo, script), ...args],
    {
      cwd: repo,
      stdio: ["ignore", "pipe", "inherit", "ipc"],
      env: { ...process.env, LOG_LEVEL: "silent", ...roleEnv },
    },
  );
  children.push(proc);
  return new Promise((resolveLine, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`${script} ${args[0]} did not start`)), 30_000);
    proc.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      out += chunk;
      const nl = out.indexOf("\n");
      if (nl >= 0 && timer) {
        clearTimeout(timer);
        try {
          resolveLine({ proc, line: JSON.parse(out.slice(0, nl)) as Record<string, unknown> });
        } catch (err) {
          reject(err);
        }
        out = "";
      }
    });
    proc.once("exit", (code) => reject(new Error(`${script} exited ${code}`)));
  });
}

function cpuSeconds(proc: ChildProcess): Promise<number> {
  return new Promise((res) => {
    proc.once("message", (m: unknown) => {
      const cpu = (m as { cpu: { user: number; system: number } }).cpu;
      res((cpu.user + cpu.system) / 1e6);
    });
    proc.send("cpu");
  });
}

/** One connection: header + `bytes` bytes, wait for the target's "K". Returns ms. */
function transfer(port: number, bytes: number, payload: Buffer): Promise<number> {
  return new Promise((res, rej) => {
    const start = process.hrtime.bigint();
    const s = net.connect({ port, host: "127.0.0.1", noDelay: true });
    s.on("error", rej);
    s.once("connect", () => {
      const header = Buffer.alloc(8);
      header.writeBigUInt64BE(BigInt(bytes));
      s.write(header);
      let left = bytes;
      const pump = () => {
        while (left > 0) {
          const n = Math.min(left, payload.length);
          left -= n;
          if (!s.write(n === payload.length ? payload : payload.subarray(0, n))) {
            s.once("drain", pump);
            return;
          }
        }
      };
      pump();
    });
    s.once("data", () => {
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      s.destroy();
      res(ms);
    });
  });
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

interface PathResult {
  mibPerS: number;
  p50: number;
  p99: number;
  /** The same loop with PAUSE_MS between connections. */
  pausedP50: number;
  pausedP99: number;
  senderCpuPerGiB?: number;
  listenerCpuPerGiB?: number;
}

async function measure(entryPort: number, procs?: { sender: ChildProcess; listener: ChildProcess }) {
  const small = Buffer.from("x");
  for (let i = 0; i < 20; i++) await transfer(entryPort, 1, small); // warm-up
  const lat: number[] = [];
  for (let i = 0; i < CONNECTS; i++) lat.push(await transfer(entryPort, 1, small));
  lat.sort((a, b) => a - b);
  const paused: number[] = [];
  for (let i = 0; i < CONNECTS; i++) {
    await new Promise((r) => setTimeout(r, PAUSE_MS));
    paused.push(await transfer(entryPort, 1, small));
  }
  paused.sort((a, b) => a - b);
  const payload = randomBytes(256 * 1024);
  await transfer(entryPort, 32 * MIB, payload); // warm-up (JIT, TCP windows)
  const before = procs && (await Promise.all([cpuSeconds(procs.sender), cpuSeconds(procs.listener)]));
  const ms = await transfer(entryPort, BULK_BYTES, payload);
  const after = procs && (await Promise.all([cpuSeconds(procs.sender), cpuSeconds(procs.listener)]));
  const gib = BULK_BYTES / (1024 * MIB);
  const result: PathResult = {
    mibPerS: BULK_BYTES / MIB / (ms / 1000),
    p50: percentile(lat, 50),
    p99: percentile(lat, 99),
    pausedP50: percentile(paused, 50),
    pausedP99: percentile(paused, 99),
  };
  if (before && after) {
    result.senderCpuPerGiB = (after[0] - before[0]) / gib;
    result.listenerCpuPerGiB = (after[1] - before[1]) / gib;
  }
  return result;
}

async function relayPath(kind: "our" | "hyco", config: Record<string, unknown>): Promise<PathResult> {
  // The baseline is hyco-ws as a user installs it: without native masking (bench/lib/hide-bufferutil.cjs).
  const flags = kind === "hyco" ? ["--require", join(here, "lib", "hide-bufferutil.cjs")] : [];
  const roles = kind === "hyco" ? ["hyco-listener", "hyco-sender"] : ["module", "gateway"];
  const listener = await spawnNode(
    "bench/relay-path-node.ts",
    [roles[0] as string, JSON.stringify(config)],
    flags,
  );
  const sender = await spawnNode(
    "bench/relay-path-node.ts",
    [roles[1] as string, JSON.stringify({ ...config, publicPort: await freePort() })],
    flags,
  );
  try {
    return await measure(sender.line.port as number, { sender: sender.proc, listener: listener.proc });
  } finally {
    sender.proc.kill();
    listener.proc.kill();
    await Promise.all([once(sender.proc, "exit"), once(listener.proc, "exit")]);
  }
}

/** `reference`: figures for comparison only (a path users do not run), without the target. */
function latencyFigures(
  label: string,
  r: PathResult,
  direct: PathResult,
  hyco: PathResult,
  reference = false,
): BenchFigure[] {
  const target = (value: number) => (reference ? {} : { target: "< 1.5 ms", met: value < 1.5 });
  const vs = (pick: (p: PathResult) => number) => [
    { name: "direct TCP", value: pick(direct) },
    { name: "hyco-ws", value: pick(hyco) },
  ];
  return [
    {
      metric: `setup latency p50, back to back, ${label}`,
      value: r.p50,
      unit: "ms",
      baselines: vs((p) => p.p50),
      ...target(r.p50),
    },
    {
      metric: `setup latency p99, back to back, ${label}`,
      value: r.p99,
      unit: "ms",
      baselines: vs((p) => p.p99),
    },
    {
      metric: `setup latency p50, paused, ${label}`,
      value: r.pausedP50,
      unit: "ms",
      baselines: vs((p) => p.pausedP50),
      ...target(r.pausedP50),
    },
    {
      metric: `setup latency p99, paused, ${label}`,
      value: r.pausedP99,
      unit: "ms",
      baselines: vs((p) => p.pausedP99),
    },
  ];
}

export async function runBenchmark(): Promise<BenchSection> {
  const manageKey = randomBytes(32).toString("base64");
  const dir = mkdtempSync(join(tmpdir(), "relay-path-bench-"));
  writeFileSync(join(dir, "allowlist.txt"), "127.0.0.1/32:*\n");
  roleEnv.RELAY_ALLOWLIST_FILE = join(dir, "allowlist.txt");
  try {
    const emulator = await spawnNode("sim/relay-emulator/main.ts", [
      "--manage-key",
      manageKey,
      "--hc",
      "bench",
    ]);
    const target = await spawnNode("bench/relay-path-node.ts", ["target", "{}"]);
    const config = {
      url: emulator.line.url as string,
      hc: "bench",
      keyName: emulator.line.manageKeyName as string,
      key: manageKey,
      targetPort: target.line.port as number,
    };
    const direct = await measure(target.line.port as number);
    const hycoRes = await relayPath("hyco", config);
    const ours = await relayPath("our", config);
    const oursCold = await relayPath("our", { ...config, cold: true });
    const cpu = (r: PathResult) => (r.senderCpuPerGiB ?? 0) + (r.listenerCpuPerGiB ?? 0);
    const fig = (f: BenchFigure) => f;
    const figures: BenchFigure[] = [];
    figures.push(
      ...latencyFigures(
        "project, no standby (every connection through the rendezvous)",
        oursCold,
        direct,
        hycoRes,
        true,
      ),
    );
    for (const [label, r] of [["project (ws://, masked frames)", ours]] as const) {
      figures.push(
        fig({
          metric: `throughput, ${label}`,
          value: r.mibPerS,
          unit: "MiB/s",
          baselines: [
            { name: "direct TCP", value: direct.mibPerS },
            { name: "hyco-ws", value: hycoRes.mibPerS },
          ],
          target: ">= 1.3x hyco-ws",
          met: r.mibPerS >= 1.3 * hycoRes.mibPerS,
        }),
        fig({
          metric: `CPU per GiB, sender + listener, ${label}`,
          value: cpu(r),
          unit: "s/GiB",
          baselines: [
            { name: "hyco-ws", value: cpu(hycoRes) },
            { name: "ratio to hyco-ws", value: cpu(r) / cpu(hycoRes) },
          ],
          target: "<= 0.55x hyco-ws",
          met: cpu(r) <= 0.55 * cpu(hycoRes),
        }),
        fig({
          metric: `CPU per GiB, sender / listener, ${label}`,
          value: r.senderCpuPerGiB ?? 0,
          unit: "s/GiB (sender)",
          baselines: [
            { name: "listener", value: r.listenerCpuPerGiB ?? 0 },
            { name: "hyco-ws sender", value: hycoRes.senderCpuPerGiB ?? 0 },
            { name: "hyco-ws listener", value: hycoRes.listenerCpuPerGiB ?? 0 },
          ],
        }),
        ...latencyFigures(label, r, direct, hycoRes),
      );
    }
    return {
      title: "Relay data path (loopback)",
      figures,
      notes: [
        `bulk: one connection carrying ${BULK_BYTES / MIB} MiB client → target; latency: ${CONNECTS} sequential connect + 1 byte + 1-byte answer + close, measured at the client`,
        "every role (sender, listener, emulator, target) is its own process; CPU = getrusage of the sender and listener processes over the bulk transfer",
        "project path includes the azbridge preamble round trip; hyco-ws path has none (hyco-ws has no logical ports)",
        "bufferutil (native masking) is a dependency of this project and ws@8 uses it; the hyco-ws baseline runs as published (its ws@1.1.5 has no bufferutil dependency), with bufferutil hidden from it, so it masks in JavaScript as its users' installs do",
        "project: the gateway's own code (Gateway, relayTunnelOpener, StandbyPools with the gateway's config defaults) and the module's own code (Reconciler, its listener factory and settings defaults) in two processes; only the ledger read and the twin transport are replaced by fixed documents",
        `project paths keep the gateway's default standby pool (lib/hyco/standby.ts): a connection takes one, skipping the relay's rendezvous, and gives it back when its stream ends cleanly (empty message as end of stream, ADR 0005); "no standby" is GATEWAY_STANDBY_CONNECTIONS=0, every connection through the rendezvous. Back to back: the next connect follows the previous close at once; paused: ${PAUSE_MS} ms between connections`,
      ],
    };
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  runBenchmark().then(
    (section) => {
      process.stdout.write(`${JSON.stringify(section, null, 2)}\n`);
      process.exit(0);
    },
    (err: unknown) => {
      process.stderr.write(`${String(err)}\n`);
      process.exit(1);
    },
  );
}
