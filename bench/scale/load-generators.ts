/**
 * The load generator split over several processes, each holding a share of the simulated modules
 * or sites. One process cannot hold 10,000: a process here may open 20,000 file descriptors (two
 * listener channels a site are two sockets, and 10,000 sites are 20,000), and one event loop
 * driving thousands of TLS clients runs its timers late, which bunches a fleet's reconnects that
 * the module spreads (ADR 0027). Their status lines are summed; a diagnostics dump (SIGUSR2) is
 * merged.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { LoadGeneratorConfig } from "../../sim/load-generator/main.ts";
import { type BenchChild, startBenchChild } from "./child.ts";
import { sampleProc } from "./proc-usage.ts";

/** Simulated modules or sites per load-generator process (BENCH_SCALE_PER_PROCESS). */
export const PER_PROCESS = Number(process.env.BENCH_SCALE_PER_PROCESS ?? 1_000);

export interface ModuleDiagnostics {
  phase: number;
  periodMs: number;
  attempts: Array<[number, string, number, string]>;
}

export interface LoadGenerators {
  children: BenchChild[];
  /** The latest status line of every process, numeric fields summed (max for the loop delays). */
  status(): Record<string, number>;
  /** Waits for every process's `ready` line. */
  ready(timeoutMs: number): Promise<void>;
  /** Resolves once `done(status())` holds; polls every second. */
  until(done: (s: Record<string, number>) => boolean, timeoutMs: number, what: string): Promise<void>;
  /** Every module's slot and attempts (needs `diagnosticsFile`-capable module configs). */
  diagnostics(): Promise<ModuleDiagnostics[]>;
  /** Sum of the processes' resident memory now (MiB). */
  rssMb(): number;
  stop(): Promise<void>;
}

function shares<T>(items: T[], per: number): T[][] {
  const n = Math.max(1, Math.ceil(items.length / per));
  const size = Math.ceil(items.length / n);
  return Array.from({ length: n }, (_, i) => items.slice(i * size, (i + 1) * size)).filter(
    (s) => s.length > 0,
  );
}

/**
 * Starts as many load generators as `PER_PROCESS` needs for the config's modules or sites (one
 * kind a call), each with its share; a start rate is the whole fleet's, so each process gets its
 * part of it.
 */
export function startLoadGenerators(dir: string, name: string, config: LoadGeneratorConfig): LoadGenerators {
  const configs: LoadGeneratorConfig[] = [];
  if (config.modules) {
    const m = config.modules;
    const parts = shares(m.connectionStrings, PER_PROCESS);
    for (const [i, connectionStrings] of parts.entries())
      configs.push({
        ...config,
        modules: {
          ...m,
          startPerSecond: m.startPerSecond / parts.length,
          connectionStrings,
          ...(m.diagnosticsFile ? { diagnosticsFile: `${m.diagnosticsFile}.${i}` } : {}),
        },
      });
  } else if (config.sites) {
    const s = config.sites;
    const parts = shares(s.list, PER_PROCESS);
    for (const list of parts)
      configs.push({ ...config, sites: { ...s, startPerSecond: s.startPerSecond / parts.length, list } });
  }
  const children = configs.map((c, i) => {
    const file = join(dir, `${name}-${i}.json`);
    writeFileSync(file, JSON.stringify(c));
    return startBenchChild("sim/load-generator/main.ts", [file], {});
  });
  const status = () => {
    const out: Record<string, number> = {};
    for (const child of children) {
      for (const [k, v] of Object.entries(child.last("status") ?? {})) {
        if (typeof v !== "number") continue;
        out[k] = k.startsWith("loopDelay") ? Math.max(out[k] ?? 0, v) : (out[k] ?? 0) + v;
      }
    }
    return out;
  };
  return {
    children,
    status,
    async ready(timeoutMs) {
      await Promise.all(children.map((c) => c.seen("ready", timeoutMs)));
    },
    async until(done, timeoutMs, what) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const s = status();
        if (done(s)) return;
        if (Date.now() > deadline)
          throw new Error(
            `load generators: ${what} not reached within ${timeoutMs} ms (${JSON.stringify(s)})`,
          );
        await new Promise((r) => setTimeout(r, 1_000));
      }
    },
    async diagnostics() {
      const out: ModuleDiagnostics[] = [];
      await Promise.all(
        children.map(async (child, i) => {
          const waiting = child.waitFor("diagnostics", 60_000);
          process.kill(child.pid, "SIGUSR2");
          await waiting;
          const file = configs[i]?.modules?.diagnosticsFile;
          if (!file) return;
          const dump = JSON.parse(readFileSync(file, "utf8")) as { modules: ModuleDiagnostics[] };
          out.push(...dump.modules);
        }),
      );
      return out;
    },
    rssMb: () => children.reduce((n, c) => n + (sampleProc(c.pid)?.rssMb ?? 0), 0),
    stop: async () => {
      await Promise.all(children.map((c) => c.stop()));
    },
  };
}
