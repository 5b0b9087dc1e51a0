/**
 * Child processes of the local simulation: each part of the pattern runs as its own Node process
 * (as it would in Azure or on an edge device), its output goes to a log file, and it announces
 * readiness with one JSON line on stdout. Every started process is registered so that Ctrl-C,
 * a crash of the simulation or the end of a test leaves none behind.
 *
 * On `node:child_process` rather than a library: what this file adds is the readiness line, the
 * redacted log file and exit-with-parent (sim/exit-with-parent.mjs), none of which a spawn wrapper
 * such as execa provides; and a process manager (pm2, forever) runs its own daemon with its own
 * restart rules, where the simulation restarts parts by IoT Edge's (sim/supervisor.ts).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, mkdirSync, readFileSync, type WriteStream } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { redactSecrets } from "../lib/log.ts";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** `node --import` this in every child: it exits when its parent dies (see the file)… */
export const EXIT_WITH_PARENT = join(REPO_ROOT, "sim/exit-with-parent.mjs");
/** …given this in its environment: the spawner's own pid. */
export function exitWithParentEnv(): NodeJS.ProcessEnv {
  return { RF_PARENT_PID: String(process.pid) };
}

let prebuilt: { dir: string; entries: Record<string, string> } | undefined;

/**
 * Node arguments that run a TypeScript entry point: through tsx, or, in a test run, the plain
 * ESM build of it that scripts/run-tests.mjs made once for the run (RELAY_FLEET_TEST_BUNDLES,
 * scripts/test-bundles.mjs, ADR 0029). Same code, without tsx's start-up cost in every child.
 */
export function entryArgs(script: string): string[] {
  const dir = process.env.RELAY_FLEET_TEST_BUNDLES;
  if (dir) {
    if (prebuilt?.dir !== dir) {
      const entries = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")) as Record<string, string>;
      prebuilt = { dir, entries };
    }
    const bundle = prebuilt.entries[script];
    if (bundle) return [bundle];
  }
  return ["--import", "tsx", resolve(REPO_ROOT, script)];
}

export interface NodeProcessSpec {
  /** Short name for logs and errors ("relay-emulator", "module site-1 #2"). */
  name: string;
  /** TypeScript entry point, relative to the repository root. */
  script: string;
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** Where stdout and stderr are appended; nothing is written when absent. */
  logFile?: string;
  /** A stdout JSON line for which this returns true means "ready". Default: `event === "listening"`. */
  isReady?: (line: Record<string, unknown>) => boolean;
  /** How long to wait for readiness (default 60 s: a loaded CI machine starts tsx slowly). */
  readyTimeoutMs?: number;
}

export interface RunningProcess {
  readonly name: string;
  readonly child: ChildProcess;
  /** The JSON line that announced readiness. */
  readonly ready: Record<string, unknown>;
  /** Every JSON line printed up to and including the readiness line. */
  readonly earlyLines: Record<string, unknown>[];
  /** Resolves with the exit code (or the signal name) when the process ends. */
  readonly exited: Promise<number | string>;
  /** Graceful stop: the signal, then SIGKILL after `graceMs`. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number | string>;
  /** True once `stop()` was called: an exit after it is intended, not a crash to restart. */
  readonly stopRequested: boolean;
}

const running = new Set<ChildProcess>();

/** Kills every process this module started and that is still alive (synchronous: safe in `exit`). */
export function killAllChildren(signal: NodeJS.Signals = "SIGKILL"): void {
  for (const child of running) {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  }
}

process.once("exit", () => killAllChildren());

/**
 * Copies a stream into a log file line by line with secrets inside text masked: the parts' pino
 * lines are redacted already, but a stack trace or a library's own output is not.
 */
function redactingWriter(log: WriteStream): { write(chunk: Buffer): void; flush(): void } {
  let partial = "";
  return {
    write(chunk) {
      partial += chunk.toString("utf8");
      const cut = partial.lastIndexOf("\n");
      if (cut < 0) {
        // A line without end yet; bound what is held back.
        if (partial.length > 64 * 1024) {
          log.write(redactSecrets(partial));
          partial = "";
        }
        return;
      }
      log.write(redactSecrets(partial.slice(0, cut + 1)));
      partial = partial.slice(cut + 1);
    },
    flush() {
      if (partial) log.write(redactSecrets(partial));
      partial = "";
    },
  };
}

function parseJsonLine(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === "object" && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Starts `node --import tsx <script>` (see entryArgs) and resolves once it printed its readiness line. */
export function startNodeProcess(spec: NodeProcessSpec): Promise<RunningProcess> {
  const isReady = spec.isReady ?? ((line) => line.event === "listening");
  let logFile: WriteStream | undefined;
  let log: { write(chunk: Buffer): void; flush(): void } | undefined;
  let stderrLog: { write(chunk: Buffer): void; flush(): void } | undefined;
  if (spec.logFile) {
    // Logs may quote what a part was told (URLs, errors): readable by this user only.
    mkdirSync(dirname(spec.logFile), { recursive: true, mode: 0o700 });
    logFile = createWriteStream(spec.logFile, { flags: "a", mode: 0o600 });
    log = redactingWriter(logFile);
    // stderr has its own line buffer (its lines must not be spliced into stdout's), same file.
    stderrLog = redactingWriter(logFile);
  }
  // Benchmarks profile every part (node refuses --cpu-prof in NODE_OPTIONS): each child writes a
  // V8 CPU profile into this directory when it exits.
  const profileDir = process.env.RELAY_FLEET_CPU_PROF_DIR;
  const profile = profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [];
  const child = spawn(
    process.execPath,
    [...profile, "--import", EXIT_WITH_PARENT, ...entryArgs(spec.script), ...(spec.args ?? [])],
    {
      cwd: REPO_ROOT,
      env: { ...process.env, ...spec.env, ...exitWithParentEnv() },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  running.add(child);
  // After "close" (not "exit"), when stdout and stderr have delivered their last bytes.
  child.once("close", () => {
    stderrLog?.flush();
    log?.flush();
    logFile?.end();
  });
  const exited = new Promise<number | string>((resolveExit) => {
    child.once("exit", (code, signal) => {
      running.delete(child);
      resolveExit(code ?? signal ?? "unknown");
    });
  });
  // The last few KiB of stderr go into a start failure's message: a crash before readiness usually
  // explains itself there, and the log file may be in a temp dir that is gone by then.
  let stderrTail = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderrLog?.write(chunk);
    stderrTail = (stderrTail + chunk.toString("utf8")).slice(-4096);
  });

  let stopRequested = false;
  const stop = async (signal: NodeJS.Signals = "SIGTERM", graceMs = 10_000) => {
    stopRequested = true;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(signal);
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      timer.unref();
      const code = await exited;
      clearTimeout(timer);
      return code;
    }
    return exited;
  };

  return new Promise((resolveReady, rejectReady) => {
    let buffered = "";
    let readyLine: Record<string, unknown> | undefined;
    let lastLines: string[] = [];
    const earlyLines: Record<string, unknown>[] = [];
    const timer = setTimeout(() => {
      void stop("SIGKILL");
      rejectReady(
        new Error(
          `${spec.name} did not become ready in ${spec.readyTimeoutMs ?? 60_000} ms:\n${lastLines.join("\n")}`,
        ),
      );
    }, spec.readyTimeoutMs ?? 60_000);
    child.stdout?.on("data", (chunk: Buffer) => {
      log?.write(chunk);
      if (readyLine) return;
      buffered += chunk.toString("utf8");
      let newline = buffered.indexOf("\n");
      while (newline >= 0 && !readyLine) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        lastLines = [...lastLines.slice(-19), line];
        const json = parseJsonLine(line);
        if (json) earlyLines.push(json);
        if (json && isReady(json)) {
          readyLine = json;
          clearTimeout(timer);
          resolveReady({
            name: spec.name,
            child,
            ready: json,
            earlyLines,
            exited,
            stop,
            get stopRequested() {
              return stopRequested;
            },
          });
        }
        newline = buffered.indexOf("\n");
      }
      if (readyLine) buffered = "";
    });
    void exited.then((code) => {
      if (readyLine) return;
      clearTimeout(timer);
      rejectReady(
        new Error(
          `${spec.name} exited (${code}) before it was ready:\n${lastLines.join("\n")}\n${stderrTail}`,
        ),
      );
    });
  });
}

/** A string field of a part's readiness line; a part that left it out did not start right. */
export function readyString(line: Record<string, unknown>, key: string): string {
  const v = line[key];
  if (typeof v !== "string") throw new Error(`readiness line has no ${key}`);
  return v;
}

/** A number field of a part's readiness line (a port). */
export function readyNumber(line: Record<string, unknown>, key: string): number {
  const v = line[key];
  if (typeof v !== "number") throw new Error(`readiness line has no ${key}`);
  return v;
}
