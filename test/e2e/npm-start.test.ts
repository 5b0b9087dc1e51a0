/**
 * `npm start` smoke test, the way a newcomer uses it: `sim/index.ts --json --sites 1` from a
 * scratch working directory (it writes `.sim-state/sim.json` there), the page of the printed public
 * port, the CLI finding the simulation through the discovery file, a site added with the CLI going
 * live, and Ctrl-C (SIGINT) ending with exit code 0 and no process left behind.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { alive, bannerService, echoExact } from "../helpers/e2e.ts";
import { REPO_ROOT, tempDir, waitFor } from "../helpers/index.ts";
import { descendants, pageOf, startSim } from "../helpers/npm-start.ts";

const run = promisify(execFile);

test("npm start: ready line, a page through the public port, the CLI, a live site add, clean Ctrl-C", async (t) => {
  const cwd = tempDir(t, "relay-fleet-npm-start-");
  const sim = startSim(t, cwd, ["--sites", "1"]);
  const { out, exited } = sim;
  const ready = await sim.ready();
  assert.deepEqual(
    ready.iotHubQuotas,
    { sku: "S1", units: 1 },
    "npm start meets a small production hub's quotas",
  );
  const site = (ready.sites as Array<{ siteId: string; publicPorts: Record<string, number> }>)[0];
  assert.equal(site?.siteId, "plant-1");
  const host = (ready.gateways as string[])[0] ?? "127.0.0.1";
  assert.match(await pageOf(site.publicPorts.web ?? 0, host), /Hello from site plant-1/);

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
  // x1 uses the default profile's shared demo service, yet its page names x1.
  assert.match(await pageOf(x1Web, host, 30_000), /Hello from site x1</);

  // The README's example: a service of your own on this machine, mapped live; the answer gives
  // its public port, and the status lines' port table grows by it.
  const own = await bannerService(t);
  const mapped = JSON.parse(
    (await cli("map", "add", "plant-1", "mine", `127.0.0.1:${own.port}`, "--allow", "127.0.0.0/8")).stdout,
  ) as {
    mappings: Record<string, { publicPort?: number }>;
  };
  const minePort = mapped.mappings.mine?.publicPort;
  assert.ok(minePort, "map add answers with the new public port");
  const greeting = await waitFor(
    () => echoExact(minePort, Buffer.from("ping"), host, 5_000).catch(() => undefined),
    "a connection through the new mapping",
    { timeoutMs: 30_000, intervalMs: 500 },
  );
  assert.ok(greeting.toString().startsWith(own.banner), "the new public port reaches your own service");
  const table = await out.next(
    (l) =>
      l.event === "status" &&
      (l.ports as Array<{ siteId: string; mapping: string; publicPort: number }>).some(
        (p) => p.siteId === "plant-1" && p.mapping === "mine" && p.publicPort === minePort,
      ),
    "the port table to list plant-1/mine",
    15_000,
  );
  const listed = (table.ports as Array<{ siteId: string }>).map((p) => p.siteId);
  assert.deepEqual(listed, [...listed].sort(new Intl.Collator("en", { numeric: true }).compare));
  assert.ok(listed.includes("x1"), "the added site's ports are listed");

  // Every process of the simulation, x1's new module included.
  const children = descendants(sim.pid);
  assert.ok(children.length >= 6, `relay, hub, azurite, rollout, gateway, modules: found ${children.length}`);

  sim.child.kill("SIGINT");
  assert.equal(await exited, 0, `exit code after Ctrl-C; stderr:\n${sim.stderr()}`);
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

test("npm start --state-dir: a second run serves the sites the first one onboarded", async (t) => {
  const cwd = tempDir(t, "relay-fleet-npm-start-");
  const args = ["--sites", "1", "--state-dir", join(cwd, "state")];
  const ports: number[] = [];
  for (const run of [1, 2]) {
    const sim = startSim(t, cwd, args);
    const ready = await sim.ready();
    const site = (ready.sites as Array<{ siteId: string; publicPorts: Record<string, number> }>)[0];
    const web = site?.publicPorts.web;
    assert.ok(web, `run ${run}: plant-1 has a web port`);
    ports.push(web);
    // Run 2 adopts run 1's saved site (same public port, same hybrid connection and keys), with
    // its mappings pointed at this run's demo services.
    assert.match(await pageOf(web, "127.0.0.1", 30_000), /Hello from site plant-1/, `run ${run}`);
    const children = descendants(sim.pid);
    sim.child.kill("SIGINT");
    assert.equal(await sim.exited, 0, `run ${run} exit code; stderr:\n${sim.stderr()}`);
    await waitFor(() => children.every((pid) => !alive(pid)), `run ${run}: every child gone`, {
      timeoutMs: 5_000,
    });
  }
  assert.equal(ports[1], ports[0], "the saved site keeps its public port");
  assert.ok(existsSync(join(cwd, "state", "relay", "state.json")), "the relay's state is kept");
});
