import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { startRolloutHttpServer } from "../../cloud/functions/src/http-server.ts";
import { REPO_ROOT, tempDir } from "../helpers/index.ts";
import { startRolloutEnv } from "../helpers/rollout-env.ts";

const run = promisify(execFile);

test("the CLI finds the simulation through .sim-state/sim.json and manages sites", async (t) => {
  const env = await startRolloutEnv(t);
  const server = await startRolloutHttpServer(env.rollout);
  t.after(() => server.close());
  const dir = tempDir(t);
  mkdirSync(join(dir, ".sim-state"));
  writeFileSync(
    join(dir, ".sim-state", "sim.json"),
    JSON.stringify({ version: 1, rollout: { url: server.url, functionKey: server.functionKey } }),
  );
  const cli = async (...args: string[]) => {
    try {
      const { stdout, stderr } = await run(
        process.execPath,
        [join(REPO_ROOT, "bin/relay-fleet.js"), ...args],
        {
          cwd: dir,
          env: { ...process.env, NO_COLOR: "1", RELAY_FLEET_API_URL: "", RELAY_FLEET_SIM_STATE: "" },
        },
      );
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  };
  let r = await cli("sites", "add", "cli-1", "--profile", "single");
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).siteId, "cli-1");
  r = await cli("map", "add", "cli-1", "rdp", "10.0.0.5:3389", "--max-connections", "5");
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).mappings.rdp.maxConnections, 5);
  // Adding it again is refused; update changes only what it names; replace is its own command.
  r = await cli("map", "add", "cli-1", "ssh", "10.0.0.5:22", "--allow", "203.0.113.0/24");
  assert.equal(r.code, 0, r.stderr);
  r = await cli("map", "add", "cli-1", "ssh", "10.0.0.6:22");
  assert.equal(r.code, 1);
  assert.match(r.stderr, /already has a mapping "ssh"/);
  r = await cli("map", "update", "cli-1", "ssh", "--target", "10.0.0.6:22");
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).mappings.ssh.target, "10.0.0.6:22");
  assert.deepEqual(JSON.parse(r.stdout).mappings.ssh.allowCidrs, ["203.0.113.0/24"], "--allow kept");
  r = await cli("map", "replace", "cli-1", "ssh", "10.0.0.7:22");
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout).mappings.ssh.allowCidrs, [], "replace whole");
  r = await cli("map", "remove", "cli-1", "ssh");
  assert.equal(r.code, 0, r.stderr);
  r = await cli("sites", "list");
  assert.match(r.stdout, /^SITE\s+DEVICES\s+MAPPINGS\s+PUBLIC PORTS/);
  assert.match(r.stdout, /cli-1\s+cli-1\s+app,rdp/);
  r = await cli("status", "--json");
  assert.equal(r.code, 0, r.stderr);
  const rows = JSON.parse(r.stdout) as Array<{ siteId: string; listenerOnline: boolean; drift: string[] }>;
  assert.equal(rows[0]?.siteId, "cli-1");
  assert.equal(rows[0]?.listenerOnline, false);
  assert.ok(rows[0]?.drift.includes("never reported"));
  // No IoT Edge runtime runs this device: its edge agent has not reported a deployment state.
  assert.equal((rows[0] as { deployment?: string } | undefined)?.deployment, "no edge agent report");
  r = await cli("status");
  assert.match(r.stdout, /^SITE\s+DEVICE\s+DEPLOYMENT\s+LISTENER/);
  assert.match(r.stdout, /cli-1\s+cli-1\s+no edge agent report\s+unknown\s+2\s+0/);
  assert.equal(r.stdout.includes("\u001b["), false, "no colour when not a TTY");

  // A redundant site: a second device joins (named by the rollout), each shows its own state.
  r = await cli("devices", "add", "cli-1");
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(
    (JSON.parse(r.stdout) as { devices: Array<{ deviceId: string }> }).devices.map((d) => d.deviceId),
    ["cli-1", "cli-1.2"],
  );
  r = await cli("devices", "list", "cli-1");
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^DEVICE\s+LISTENER\s+APPLIED/);
  assert.match(r.stdout, /\ncli-1\.2\s+unknown\s+-\s+0\s+never reported/);
  r = await cli("devices", "add", "cli-1", "bad device", "--json");
  assert.equal(r.code, 1);
  assert.equal(JSON.parse(r.stderr).error.code, "RF_ERR_ROLLOUT_INVALID");
  r = await cli("devices", "remove", "cli-1", "cli-1.2", "--delete-device");
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await env.deps.hub.getDevice("cli-1.2"), undefined);
  r = await cli("devices", "remove", "cli-1", "cli-1");
  assert.equal(r.code, 1);
  assert.match(r.stderr, /only device; remove the site instead/);

  r = await cli("sites", "show", "ghost");
  assert.equal(r.code, 1);
  assert.equal(r.stderr.trim(), "relay-fleet: Site ghost does not exist.");
  r = await cli("map", "add", "cli-1", "bad", "nohost");
  assert.equal(r.code, 1);
  assert.match(r.stderr, /target: must be host:port/);
  r = await cli("sites", "remove", "cli-1");
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await env.deps.ledger.listSites()).length, 0);
});
