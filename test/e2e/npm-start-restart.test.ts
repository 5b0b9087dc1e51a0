/**
 * `npm start` keeps every part running like IoT Edge's `restartPolicy: always`: each part of the
 * simulation (a site's module, the relay emulator, the IoT Hub emulator, Azurite, the gateway, the
 * rollout service) is killed with SIGKILL in turn; each is reported (`part-crashed`,
 * `part-restarted` JSON events, restart counts in the status lines), comes back with its state and
 * port, and the site serves through its public port again. After Ctrl-C the logs of this run with
 * crashes are kept, and the `stopped` event says where.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, rmSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { test } from "node:test";
import { tempDir } from "../helpers/index.ts";
import { pageOf, startSim } from "../helpers/npm-start.ts";

test("npm start: each killed part is restarted, reported, and the site serves again; logs kept after Ctrl-C", async (t) => {
  const cwd = tempDir(t, "relay-fleet-npm-restart-");
  const sim = startSim(t, cwd, ["--sites", "1"]);
  const ready = await sim.ready();
  const site = (ready.sites as Array<{ siteId: string; publicPorts: Record<string, number> }>)[0];
  const web = site?.publicPorts.web ?? 0;
  assert.match(await pageOf(web, "127.0.0.1"), /Hello from site plant-1/);
  const pids = new Map((ready.parts as Array<{ part: string; pid: number }>).map((p) => [p.part, p.pid]));
  const order = ["module-plant-1", "relay-emulator", "iothub-emulator", "azurite", "gateway-1", "rollout"];
  for (const part of order) assert.ok(pids.get(part), `the ready line names ${part}'s pid`);

  for (const part of order) {
    const since = Date.now();
    const pid = pids.get(part) as number;
    process.kill(pid, "SIGKILL");
    const crashed = await sim.out.next(
      (l) => l.event === "part-crashed" && l.part === part,
      `${part}'s crash event`,
      15_000,
    );
    assert.equal(crashed.code, "SIGKILL");
    assert.ok(Number(crashed.restartInMs) >= 0, "a restart is scheduled");
    const restarted = await sim.out.next(
      (l) => l.event === "part-restarted" && l.part === part,
      `${part}'s restart event`,
      60_000,
    );
    assert.notEqual(restarted.pid, pid, `${part} runs as a new process`);
    const restartedAfter = Date.now() - since;
    // Same port, same state: the site's page comes back through the same public port.
    assert.match(
      await pageOf(web, "127.0.0.1", 60_000),
      /Hello from site plant-1/,
      `after ${part} restarted`,
    );
    t.diagnostic(`${part}: restarted after ${restartedAfter} ms, serving after ${Date.now() - since} ms`);
  }
  // The rollout service came back on its port with its key: the API still answers the CLI's way.
  const status = await sim.out.next(
    (l) =>
      l.event === "status" &&
      (l.parts as Array<{ state: string; restarts: number }>).every((p) => p.state === "up") &&
      (l.parts as Array<{ restarts: number }>).filter((p) => p.restarts === 1).length === order.length,
    "a status line with every part up, each restarted once",
    20_000,
  );
  assert.ok(status);

  sim.child.kill("SIGINT");
  assert.equal(await sim.exited, 0, `exit code after Ctrl-C; stderr:\n${sim.stderr()}`);
  const stopped = await sim.out.next((l) => l.event === "stopped", "the stopped event", 5_000);
  const logs = String(stopped.logsKept ?? "");
  assert.ok(logs && existsSync(logs), `the logs of a run with crashes are kept (${logs})`);
  t.after(() => rmSync(dirname(logs), { recursive: true, force: true }));
  const files = readdirSync(logs);
  for (const part of order) assert.ok(files.includes(`${part}.log`), `${part}.log is kept`);
  assert.equal(statSync(logs).mode & 0o077, 0, "the kept logs are readable by this user only");
  assert.deepEqual(readdirSync(dirname(logs)), ["logs"], "everything but the logs (keys, state) is removed");
});
