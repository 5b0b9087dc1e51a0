/**
 * The third-party tools the real-client benchmark drives (iperf3, socat with OpenSSL, wrk,
 * PostgreSQL's pgbench and server), found on PATH or in PostgreSQL's versioned bin directory. A
 * missing tool is reported with the command that installs it; its rows are "not measured".
 */
import { execFile, execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";

/** Debian package that provides each tool (`apt-get install -y …`). */
export const TOOL_PACKAGES: Record<string, string> = {
  iperf3: "iperf3",
  socat: "socat",
  wrk: "wrk",
  pgbench: "postgresql-contrib (or postgresql-client)",
  postgres: "postgresql",
  openssl: "openssl",
};

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(":")) {
    const file = join(dir, name);
    if (dir && existsSync(file)) return file;
  }
  return undefined;
}

/** PostgreSQL keeps its server binaries out of PATH, in /usr/lib/postgresql/<major>/bin. */
function inPostgresBin(name: string): string | undefined {
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return undefined;
  const majors = readdirSync(root).sort((a, b) => Number(b) - Number(a));
  for (const major of majors) {
    const file = join(root, major, "bin", name);
    if (existsSync(file)) return file;
  }
  return undefined;
}

/** Absolute path of `name`, or undefined when it is not installed. */
export function findTool(name: string): string | undefined {
  return onPath(name) ?? inPostgresBin(name);
}

/** socat built with OpenSSL (the TLS chain needs its OPENSSL address type). */
export function socatHasOpenssl(socat: string): boolean {
  try {
    return /define WITH_OPENSSL 1/.test(execFileSync(socat, ["-V"], { encoding: "utf8" }));
  } catch {
    return false;
  }
}

/** "not measured: wrk is not installed (apt-get install -y wrk)" */
export function missingNote(tools: string[]): string {
  const pkgs = [...new Set(tools.map((t) => TOOL_PACKAGES[t] ?? t))].join(" ");
  return `not measured: ${tools.join(", ")} not installed (install with \`apt-get install -y ${pkgs}\`)`;
}

/** Runs a tool to completion; resolves with stdout, rejects with its stderr on a non-zero exit. */
export function run(
  file: string,
  args: string[],
  timeoutMs: number,
  env?: NodeJS.ProcessEnv,
): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { timeout: timeoutMs, maxBuffer: 64 * 2 ** 20, env: { ...process.env, ...env } },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${file} ${args.join(" ")}: ${stderr.trim() || err.message}`));
        else resolve(stdout);
      },
    );
  });
}

/**
 * CPU seconds a process and its reaped children have used (utime + stime + cutime + cstime from
 * /proc, Linux). socat with `fork` serves each connection in a child; once that child has exited
 * and been reaped, its time shows in the parent's cutime/cstime.
 */
export async function cpuWithChildrenOf(pid: number): Promise<number | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = [11, 12, 13, 14].reduce((s, i) => s + Number(fields[i]), 0);
    return ticks / 100;
  } catch {
    return undefined;
  }
}
