/**
 * Shared test helpers: child processes that are always reaped, temp dirs that are always removed,
 * and polling with a deadline. Every test binds port 0 (or asks a child to) and uses these, so the
 * suite runs in parallel with itself and leaves nothing behind.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { EXIT_WITH_PARENT, entryArgs, exitWithParentEnv } from "../../sim/child-process.ts";

/** Minimal view of node:test's TestContext that the helpers need (`t` or `suite` hooks). */
export interface CleanupContext {
  after(fn: () => unknown): void;
}

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** Creates a temp dir removed when the test ends. */
export function tempDir(t: CleanupContext, prefix = "relay-fleet-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true, maxRetries: 3 }));
  return dir;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `probe` until it returns a truthy value or the deadline passes (then throws with `what`). */
export async function waitFor<T>(
  probe: () => T | Promise<T>,
  what: string,
  { timeoutMs = 15_000, intervalMs = 50 } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      lastError = err;
    }
    await sleep(intervalMs);
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ""}`,
  );
}

export interface ManagedProcess {
  child: ChildProcess;
  /** Everything the process wrote to stdout so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves with the first stdout line matching `pattern`. */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Sends a signal and waits for exit; SIGKILL after `graceMs`. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number | null>;
  exited: Promise<number | null>;
}

/**
 * Spawns `node --import tsx <script> ...args` (a TypeScript entry point of this repo) and kills it
 * when the test ends, whatever happens.
 */
export function spawnTs(
  t: CleanupContext,
  script: string,
  args: string[] = [],
  env: NodeJS.ProcessEnv = {},
): ManagedProcess {
  return spawnNode(t, [...entryArgs(script), ...args], { env, label: script });
}

/**
 * Spawns `node ...args` in `cwd` (default: the repository), e.g. a bundled part from an
 * assembled image folder, and kills it when the test ends.
 */
export function spawnNode(
  t: CleanupContext,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; label?: string } = {},
): ManagedProcess {
  const script = opts.label ?? args.join(" ");
  // Preloaded so that a child outlives neither a test file killed at its timeout (when no
  // cleanup hook runs) nor the runner.
  const child = spawn(process.execPath, ["--import", EXIT_WITH_PARENT, ...args], {
    cwd: opts.cwd ?? REPO_ROOT,
    env: { ...process.env, ...opts.env, ...exitWithParentEnv() },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  const lineWaiters: Array<{ pattern: RegExp; resolve: (m: RegExpMatchArray) => void }> = [];
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
    out += chunk;
    for (const waiter of [...lineWaiters]) {
      const m = out.match(waiter.pattern);
      if (m) {
        lineWaiters.splice(lineWaiters.indexOf(waiter), 1);
        waiter.resolve(m);
      }
    }
  });
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    err += chunk;
  });
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  const stop = async (signal: NodeJS.Signals = "SIGTERM", graceMs = 5_000) => {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    const code = await exited;
    clearTimeout(timer);
    return code;
  };
  t.after(() => stop("SIGKILL", 1_000));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    stop,
    waitForLine(pattern, timeoutMs = 20_000) {
      const m = out.match(pattern);
      if (m) return Promise.resolve(m);
      return new Promise((resolveLine, reject) => {
        const timer = setTimeout(() => {
          reject(
            new Error(`timed out waiting for ${pattern} from ${script}\nstdout:\n${out}\nstderr:\n${err}`),
          );
        }, timeoutMs);
        lineWaiters.push({
          pattern,
          resolve: (m2) => {
            clearTimeout(timer);
            resolveLine(m2);
          },
        });
        void exited.then((code) => {
          clearTimeout(timer);
          reject(
            new Error(
              `${script} exited (${code}) before printing ${pattern}\nstdout:\n${out}\nstderr:\n${err}`,
            ),
          );
        });
      });
    },
  };
}
