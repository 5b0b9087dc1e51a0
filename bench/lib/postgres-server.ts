/**
 * A throwaway PostgreSQL server for the pgbench rows: `initdb` into a temp dir, trust auth on
 * loopback, a free port. PostgreSQL refuses to run as root, so as root it runs as the `postgres`
 * user (runuser). fsync is off: the disk is not what the benchmark compares.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chownSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../../sim/ports.ts";
import { findTool, run } from "./tools.ts";

export interface PostgresServer {
  port: number;
  stop(): Promise<void>;
}

function asServerUser(file: string, args: string[]): [string, string[]] {
  if (process.getuid?.() !== 0) return [file, args];
  return ["runuser", ["-u", "postgres", "--", file, ...args]];
}

export async function startPostgres(): Promise<PostgresServer> {
  const initdb = findTool("initdb");
  const postgres = findTool("postgres");
  const pgIsReady = findTool("pg_isready");
  if (!initdb || !postgres || !pgIsReady) throw new Error("PostgreSQL server binaries not found");
  const dir = mkdtempSync(join(tmpdir(), "relay-fleet-bench-pg-"));
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
    chownSync(dir, uid, gid);
  }
  const data = join(dir, "data");
  const [initFile, initArgs] = asServerUser(initdb, [
    "-D",
    data,
    "--auth=trust",
    "-U",
    "postgres",
    "-E",
    "UTF8",
  ]);
  await run(initFile, initArgs, 120_000);
  const port = await freePort();
  const [file, args] = asServerUser(postgres, [
    "-D",
    data,
    "-k",
    dir,
    "-h",
    "127.0.0.1",
    "-p",
    String(port),
    "-c",
    "fsync=off",
    "-c",
    "max_connections=200",
  ]);
  // Its own process group: runuser does not pass signals on, so stop signals the whole group.
  const child: ChildProcess = spawn(file, args, { stdio: "ignore", detached: true });
  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      if (child.pid) process.kill(-child.pid, signal);
    } catch {
      // already gone
    }
  };
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once("exit", r));
      signalGroup("SIGINT"); // PostgreSQL's fast shutdown
      const timer = setTimeout(() => signalGroup("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  for (let i = 0; i < 200; i++) {
    try {
      await run(pgIsReady, ["-h", "127.0.0.1", "-p", String(port)], 5_000);
      return { port, stop };
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  await stop();
  throw new Error("PostgreSQL did not start");
}
