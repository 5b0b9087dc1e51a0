/**
 * Starts a TypeScript entry point (`node --import tsx`) for a benchmark and follows its JSON
 * lines: `waitFor(event)` resolves with the next line of that event, `last(event)` is the latest.
 */
import { spawn } from "node:child_process";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** Children still running: killed when the benchmark exits (one listener for all of them). */
const running = new Set<() => void>();
process.once("exit", () => {
  for (const kill of running) kill();
});

export interface BenchChild {
  pid: number;
  waitFor(
    event: string,
    timeoutMs: number,
    match?: (line: Record<string, unknown>) => boolean,
  ): Promise<Record<string, unknown>>;
  last(event: string): Record<string, unknown> | undefined;
  /** The latest line of `event` if one came already, else the next one. */
  seen(event: string, timeoutMs: number): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

export function startBenchChild(script: string, args: string[], env: NodeJS.ProcessEnv): BenchChild {
  // exit-with-parent: a benchmark stopped by a signal leaves no orphan behind.
  const child = spawn(
    process.execPath,
    ["--import", "./sim/exit-with-parent.mjs", "--import", "tsx", script, ...args],
    {
      cwd: ROOT,
      env: { ...process.env, LOG_LEVEL: "warn", RF_PARENT_PID: String(process.pid), ...env },
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const kill = () => child.kill("SIGKILL");
  running.add(kill);
  const latest = new Map<string, Record<string, unknown>>();
  const waiters = new Set<(line: Record<string, unknown>) => void>();
  let buf = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    buf += chunk;
    const lines = buf.split("\n");
    buf = lines.pop() ?? "";
    for (const text of lines) {
      if (!text.startsWith("{")) continue;
      try {
        const line = JSON.parse(text) as Record<string, unknown>;
        if (typeof line.event === "string") latest.set(line.event, line);
        // pino's error and fatal lines: worth seeing in the benchmark's output.
        if (typeof line.level === "number" && line.level >= 50) process.stderr.write(`${script}: ${text}\n`);
        for (const w of waiters) w(line);
      } catch {
        // a log line that is not ours
      }
    }
  });
  let exited = false;
  child.once("exit", (code) => {
    exited = true;
    running.delete(kill);
    for (const w of waiters) w({ event: "failed", error: `exited with code ${code}` });
  });
  return {
    pid: child.pid ?? 0,
    last: (event) => latest.get(event),
    seen(event, timeoutMs) {
      const line = latest.get(event);
      return line ? Promise.resolve(line) : this.waitFor(event, timeoutMs);
    },
    waitFor: (event, timeoutMs, match = () => true) =>
      new Promise((res, rej) => {
        const timer = setTimeout(() => {
          waiters.delete(w);
          rej(new Error(`${script}: no ${event} line within ${timeoutMs} ms`));
        }, timeoutMs);
        const w = (line: Record<string, unknown>) => {
          if (line.event === "failed") {
            clearTimeout(timer);
            waiters.delete(w);
            rej(new Error(`${script} failed: ${String(line.error)}`));
          } else if (line.event === event && match(line)) {
            clearTimeout(timer);
            waiters.delete(w);
            res(line);
          }
        };
        waiters.add(w);
      }),
    stop: () =>
      new Promise((res) => {
        if (exited) return res();
        const timer = setTimeout(kill, 10_000);
        child.once("exit", () => {
          clearTimeout(timer);
          res();
        });
        child.kill("SIGTERM");
      }),
  };
}
