/**
 * No secret in any log, process list or readable file: a real `npm start` (sim/index.ts) with a
 * persistent state dir, a site added with the CLI and keys rotated, so every kind of key exists
 * (IoT Hub owner and device/module keys, the relay's root Manage key, Listen keys old and new, the
 * rollout function key, the managed identities' IDENTITY_HEADER secrets). Each secret is then
 * searched for in every process's arguments (/proc/<pid>/cmdline), in every log and in every file
 * the run wrote; the files that must hold keys (state files, key files, TLS private keys) are
 * readable by this user only.
 *
 * The cloud parts hold no key at all (ADR 0010): the environment of every gateway
 * and of the rollout (/proc/<pid>/environ) names an identity and no connection string, account
 * key, Manage key or Send rule, and the ledger (Azurite's table files) holds none of the keys.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { AZURITE_KEY } from "../../sim/azurite.ts";
import { REPO_ROOT, tempDir, waitFor } from "../helpers/index.ts";
import { descendants, pageOf, startSim } from "../helpers/npm-start.ts";

const run = promisify(execFile);

/** Every long string under a key-like field name, at any depth of a JSON document. */
function keysIn(value: unknown, out: Set<string>, field = ""): void {
  if (typeof value === "string") {
    if (
      /key|secret|connectionstring/i.test(field) &&
      !/name|fingerprint|type/i.test(field) &&
      value.length >= 20
    )
      out.add(value);
    return;
  }
  if (Array.isArray(value)) for (const v of value) keysIn(v, out, field);
  else if (value && typeof value === "object") for (const [k, v] of Object.entries(value)) keysIn(v, out, k);
}

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

function cmdlines(pids: number[]): string[] {
  const out: string[] = [];
  for (const pid of pids) {
    try {
      out.push(readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " "));
    } catch {
      // Ended meanwhile.
    }
  }
  return out;
}

/** Environment of a process, or undefined when it ended meanwhile. */
function environOf(pid: number): Record<string, string> | undefined {
  try {
    const entries = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").filter(Boolean);
    return Object.fromEntries(entries.map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)]));
  } catch {
    return undefined;
  }
}

/**
 * The processes that run in Azure (gateways, the Functions app), by their entry point: the source
 * under tsx, or the test run's build of it (scripts/test-bundles.mjs).
 */
const CLOUD_PARTS = [/cloud\/gateway\/src\/main\.m?[jt]s/, /cloud\/functions\/src\/serve-local\.m?[jt]s/];

/** Settings that carry a key; none may be set in a cloud part. */
const KEY_SETTINGS = [
  "IOTHUB_CONNECTION_STRING",
  "LEDGER_CONNECTION_STRING",
  "AzureWebJobsStorage",
  "RELAY_MANAGE_KEY",
  "RELAY_MANAGE_KEY_NAME",
];

/** Files whose job is to hold keys; anything else (the ledger included) must hold none. */
const KEY_STORES = [
  /^relay\/state\.json$/,
  /^relay\/manage\.key$/,
  /^iothub\/state\.json$/,
  /^iothub\/owner\.key$/,
  /key\.pem$/,
];

test("npm start leaves no secret in process arguments, logs or readable files", async (t) => {
  const cwd = tempDir(t, "relay-fleet-npm-secrets-");
  const stateDir = join(cwd, "state");
  const sim = startSim(t, cwd, ["--sites", "1", "--state-dir", stateDir]);
  const ready = await sim.ready();
  const web = (ready.sites as Array<{ publicPorts: Record<string, number> }>)[0]?.publicPorts.web ?? 0;
  await pageOf(web, "127.0.0.1");

  const discovery = join(cwd, ".sim-state", "sim.json");
  const cli = (...args: string[]) =>
    run(process.execPath, [join(REPO_ROOT, "bin/relay-fleet.js"), ...args], {
      cwd,
      env: { ...process.env, NO_COLOR: "1", RELAY_FLEET_API_URL: "", RELAY_FLEET_SIM_STATE: discovery },
    });
  const args: string[] = [];
  const secrets = new Set<string>();
  const cloudEnvs: Array<{ part: string; env: Record<string, string> }> = [];
  const collect = () => {
    const pids = [sim.pid, ...descendants(sim.pid)];
    args.push(...cmdlines(pids));
    for (const pid of pids) {
      const cmd = cmdlines([pid])[0] ?? "";
      const part = CLOUD_PARTS.find((re) => re.test(cmd));
      const env = part ? environOf(pid) : undefined;
      if (!part || !env) continue;
      cloudEnvs.push({ part: part.source, env });
      if (env.IDENTITY_HEADER) secrets.add(env.IDENTITY_HEADER);
    }
    for (const f of ["relay/state.json", "iothub/state.json"])
      keysIn(JSON.parse(readFileSync(join(stateDir, f), "utf8")), secrets);
    for (const f of ["relay/manage.key", "iothub/owner.key"])
      secrets.add(readFileSync(join(stateDir, f), "utf8").trim());
    keysIn(JSON.parse(readFileSync(discovery, "utf8")), secrets);
  };
  collect();
  await cli("sites", "add", "x1");
  await sim.out.next((l) => l.event === "site-started" && l.siteId === "x1", "x1's module", 60_000);
  collect();
  await cli("rotate-keys", "plant-1");
  collect();

  // What the discovery file and the state hold really are the simulation's keys.
  const functionKey = (JSON.parse(readFileSync(discovery, "utf8")) as { rollout: { functionKey: string } })
    .rollout.functionKey;
  assert.ok(secrets.has(functionKey), "the function key is among the secrets searched for");
  secrets.delete(AZURITE_KEY); // Azurite's development key is public, documented by Microsoft.
  assert.ok(secrets.size >= 10, `owner, device, module, relay and function keys found: ${secrets.size}`);
  t.diagnostic(`${secrets.size} secrets, ${args.length} process command lines`);

  // The gateways and the rollout run with a managed identity and no key of any kind.
  assert.ok(
    CLOUD_PARTS.every((re) => cloudEnvs.some((c) => c.part === re.source)),
    "a gateway and the rollout were found",
  );
  const keyed: string[] = [];
  for (const { part, env } of cloudEnvs) {
    const name = part.includes("gateway") ? "gateway" : "rollout";
    if (!env.IDENTITY_ENDPOINT || !env.IDENTITY_HEADER) keyed.push(`${name} has no managed identity`);
    for (const k of KEY_SETTINGS) if (env[k]) keyed.push(`${name} has ${k}`);
    if (env.GATEWAY_RELAY_AUTH === "sas" || env.ROLLOUT_RELAY_SEND_AUTH === "sas")
      keyed.push(`${name} uses SAS`);
    for (const [k, v] of Object.entries(env)) {
      if (/SharedAccessKey=|AccountKey=|SharedAccessSignature /.test(v) || v.includes(AZURITE_KEY))
        keyed.push(`${name}'s ${k} holds a key`);
      // Its own identity's secret, and the function key the Functions host checks callers with
      // (the host's own, not a key to anything else), are expected.
      const own = k === "IDENTITY_HEADER" || (k === "ROLLOUT_FUNCTION_KEY" && v === functionKey);
      for (const s of secrets) if (!own && v.includes(s)) keyed.push(`${name}'s ${k} holds a key`);
    }
  }
  assert.deepEqual([...new Set(keyed)], [], "no key in the environment of a cloud part");

  const stateMode = statSync(join(cwd, ".sim-state")).mode & 0o777;
  sim.child.kill("SIGINT");
  assert.equal(await sim.exited, 0, `exit code after Ctrl-C; stderr:\n${sim.stderr()}`);
  await waitFor(() => !existsSync(discovery), "the discovery file to go");

  const leaks: string[] = [];
  const variants = (s: string) => [s, encodeURIComponent(s)];
  for (const line of args)
    for (const s of secrets)
      if (variants(s).some((v) => line.includes(v))) leaks.push(`ps: ${line.slice(0, 120)}…`);
  const files = filesUnder(stateDir);
  assert.ok(
    files.some((f) => f.includes("/logs/")),
    "the run wrote logs",
  );
  for (const file of files) {
    const rel = relative(stateDir, file);
    const mode = statSync(file).mode & 0o777;
    if (mode & 0o077) leaks.push(`${rel} is readable by others (mode ${mode.toString(8)})`);
    if (KEY_STORES.some((re) => re.test(rel))) continue;
    const text = readFileSync(file, "latin1");
    for (const s of secrets) if (variants(s).some((v) => text.includes(v))) leaks.push(`${rel} holds a key`);
  }
  for (const dir of ["", "logs", "relay", "iothub", "azurite"]) {
    const mode = statSync(join(stateDir, dir)).mode & 0o777;
    if (mode & 0o077) leaks.push(`directory ${dir || "."} has mode ${mode.toString(8)}`);
  }
  if (stateMode & 0o077) leaks.push(`.sim-state has mode ${stateMode.toString(8)}`);
  assert.deepEqual([...new Set(leaks)], [], "no secret outside the files made to hold them");
});
