/**
 * Runs `sim/index.ts --json …` (what `npm start` runs) as a real process tree from a scratch
 * working directory, reads its JSON lines, and guarantees the whole tree is gone when the test ends.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { alive, httpText } from "./e2e.ts";
import { type CleanupContext, REPO_ROOT, sleep, waitFor } from "./index.ts";

/** Pids of every live descendant of `pid` (from /proc). */
export function descendants(pid: number): number[] {
  const parents = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // "pid (comm) state ppid …": comm may hold spaces or parentheses, so split after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      parents.set(Number(entry), ppid);
    } catch {
      // The process ended while we looked.
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [child, parent] of parents)
      if (parent === p) {
        out.push(child);
        walk(child);
      }
  };
  walk(pid);
  return out;
}

/** JSON lines of a child's stdout, with a waiter per predicate. */
export function jsonLines(child: ChildProcess): {
  lines: Record<string, unknown>[];
  next(
    match: (l: Record<string, unknown>) => boolean,
    what: string,
    timeoutMs: number,
  ): Promise<Record<string, unknown>>;
} {
  const lines: Record<string, unknown>[] = [];
  let buffered = "";
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
    buffered += chunk;
    let nl = buffered.indexOf("\n");
    while (nl >= 0) {
      const line = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      if (line.startsWith("{")) {
        try {
          lines.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // Not a JSON line.
        }
      }
      nl = buffered.indexOf("\n");
    }
  });
  return {
    lines,
    next: (match, what, timeoutMs) => waitFor(() => lines.find(match), what, { timeoutMs, intervalMs: 100 }),
  };
}

export interface Sim {
  child: ChildProcess;
  pid: number;
  out: ReturnType<typeof jsonLines>;
  exited: Promise<number | null>;
  stderr(): string;
  ready(): Promise<Record<string, unknown>>;
}

/**
 * Starts `sim/index.ts --json …` in `cwd`. When the test ends, whatever happened, the simulation
 * is interrupted and then every process of its tree still alive is killed.
 */
export function startSim(t: CleanupContext, cwd: string, args: string[]): Sim {
  // `--import tsx` resolves from the working directory, which has no node_modules: use the path.
  const child = spawn(
    process.execPath,
    ["--import", import.meta.resolve("tsx"), join(REPO_ROOT, "sim/index.ts"), "--json", ...args],
    { cwd, env: { ...process.env, NO_COLOR: "1" }, stdio: ["ignore", "pipe", "pipe"] },
  );
  const pid = child.pid;
  assert.ok(pid);
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (c: string) => {
    stderr += c;
  });
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  const out = jsonLines(child);
  t.after(async () => {
    const tree = [pid, ...descendants(pid)];
    if (alive(pid)) {
      child.kill("SIGINT");
      await Promise.race([exited, sleep(15_000)]);
    }
    for (const p of tree) if (alive(p)) process.kill(p, "SIGKILL");
  });
  return {
    child,
    pid,
    out,
    exited,
    stderr: () => stderr,
    ready: () =>
      out
        .next((l) => l.event === "ready", "the ready line", 150_000)
        .catch((err: unknown) => {
          throw new Error(`${String(err)}\nstderr:\n${stderr}`);
        }),
  };
}

export async function pageOf(port: number, host: string, timeoutMs = 15_000): Promise<string> {
  const r = await waitFor(
    async () => {
      const res = await httpText(port, host);
      return res.status === 200 ? res : undefined;
    },
    `the page through ${host}:${port}`,
    { timeoutMs, intervalMs: 200 },
  );
  return r.body;
}
