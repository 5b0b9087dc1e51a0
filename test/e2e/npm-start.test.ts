/**
 * `npm start` smoke test, the way a newcomer uses it: `sim/index.ts --json --sites 1` from a
 * scratch working directory (it writes `.sim-state/sim.json` there), the page of the printed public
 * port, the CLI finding the simulation through the discovery file, a site added with the CLI going
 * live, and Ctrl-C (SIGINT) ending with exit code 0 and no process left behind.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { alive, httpText } from "../helpers/e2e.ts";
import { REPO_ROOT, tempDir, waitFor } from "../helpers/index.ts";

const run = promisify(execFile);

/** Pids of every live descendant of `pid` (from /proc). */
function descendants(pid: number): number[] {
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
function jsonLines(child: ChildProcess): {
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

test("npm start: ready line, a page through the public port, the CLI, a live site add, clean Ctrl-C", async (t) => {
  const cwd = tempDir(t, "relay-fleet-npm-start-");
  const pids = new Set<number>();
  // Runs after everything else: whatever happened, nothing started here survives the test.
  t.after(() => {
    for (const pid of pids) if (alive(pid)) process.kill(pid, "SIGKILL");
  });
  // `--import tsx` resolves from the working directory, which has no node_modules: use the path.
  const sim = spawn(
    process.execPath,
    ["--import", import.meta.resolve("tsx"), join(REPO_ROOT, "sim/index.ts"), "--json", "--sites", "1"],
    { cwd, env: { ...process.env, NO_COLOR: "1" }, stdio: ["ignore", "pipe", "pipe"] },
  );
  assert.ok(sim.pid);
  pids.add(sim.pid);
  let stderr = "";
  sim.stderr?.setEncoding("utf8").on("data", (c: string) => {
    stderr += c;
  });
  const exited = new Promise<number | null>((r) => sim.once("exit", (code) => r(code)));
  const out = jsonLines(sim);

  const ready = await out
    .next((l) => l.event === "ready", "the ready line", 90_000)
    .catch((err: unknown) => {
      throw new Error(`${String(err)}\nstderr:\n${stderr}`);
    });
  const site = (ready.sites as Array<{ siteId: string; publicPorts: Record<string, number> }>)[0];
  assert.equal(site?.siteId, "plant-1");
  const host = (ready.gateways as string[])[0] ?? "127.0.0.1";
  const page = await waitFor(async () => {
    const r = await httpText(site.publicPorts.web ?? 0, host);
    return r.status === 200 ? r : undefined;
  }, "the page through the printed public port");
  assert.match(page.body, /Hello from site plant-1/);

  const discovery = join(cwd, ".sim-state", "sim.json");
  assert.ok(existsSync(discovery), "the discovery file is written in the working directory");
  const cli = (...args: string[]) =>
    run(process.execPath, [join(REPO_ROOT, "bin/relay-fleet.js"), ...args], {
      cwd,
      env: { ...process.env, NO_COLOR: "1", RELAY_FLEET_API_URL: "", RELAY_FLEET_SIM_STATE: discovery },
    });
  const rows = await waitFor(async () => {
    const r = JSON.parse((await cli("status", "--json")).stdout) as Array<{ siteId: string }>;
    return r.some((row) => row.siteId === "plant-1") ? r : undefined;
  }, "the CLI status to list plant-1");
  assert.ok(rows.some((row) => row.siteId === "plant-1"));

  await cli("sites", "add", "x1");
  const started = await out.next(
    (l) => l.event === "site-started" && l.siteId === "x1",
    "the simulation to start x1's module",
    30_000,
  );
  const x1Web = (started.publicPorts as Record<string, number> | undefined)?.web;
  assert.ok(x1Web, "x1 got a public web port");
  const x1Page = await waitFor(
    async () => {
      const r = await httpText(x1Web, host);
      return r.status === 200 ? r : undefined;
    },
    "x1's page through the gateway",
    { timeoutMs: 30_000, intervalMs: 200 },
  );
  assert.match(x1Page.body, /Hello from site/);

  // Every process of the simulation, x1's new module included.
  const children = descendants(sim.pid);
  for (const pid of children) pids.add(pid);
  assert.ok(children.length >= 6, `relay, hub, azurite, rollout, gateway, modules: found ${children.length}`);

  sim.kill("SIGINT");
  assert.equal(await exited, 0, `exit code after Ctrl-C; stderr:\n${stderr}`);
  assert.ok(
    out.lines.some((l) => l.event === "stopped"),
    "it announced the stop",
  );
  const left = await waitFor(
    () => {
      const still = children.filter(alive);
      return still.length === 0 ? [] : undefined;
    },
    "every child process to be gone",
    { timeoutMs: 5_000 },
  ).catch(() => children.filter(alive));
  assert.deepEqual(left, [], "no process of the simulation is left");
  assert.equal(existsSync(discovery), false, "the discovery file is removed");
});
