/**
 * CLI conventions, run as the operator runs it (bin/relay-fleet.js in a child process):
 * --version, exit 2 for usage errors and 1 for runtime errors, JSON errors with their RF_ERR_*
 * code under --json, a description on every command, NO_COLOR only when non-empty, mapping names
 * checked on the command line with the one mapping-name rule.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { createServer } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import type { Command } from "commander";
import { useColor } from "../../cli/format.ts";
import { buildProgram, wantsJson } from "../../cli/main.ts";
import { colorWanted } from "../../lib/color.ts";
import { REPO_ROOT, tempDir } from "../helpers/index.ts";

const run = promisify(execFile);

/** A loopback URL that refuses connections: a port bound and closed again. */
async function deadUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return `http://127.0.0.1:${port}`;
}

async function cli(cwd: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  try {
    const { stdout, stderr } = await run(process.execPath, [join(REPO_ROOT, "bin/relay-fleet.js"), ...args], {
      cwd,
      env: { ...process.env, RELAY_FLEET_API_URL: "", RELAY_FLEET_SIM_STATE: "", ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test("--version prints the package version", async (t) => {
  const version = (JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as { version: string })
    .version;
  const r = await cli(tempDir(t), ["--version"]);
  assert.equal(r.code, 0);
  assert.equal(r.stdout.trim(), version);
});

test("usage errors exit 2, runtime errors 1; --json turns both into JSON with a code", async (t) => {
  const cwd = tempDir(t);
  const url = await deadUrl();
  const [missing, unknown, badValue, missingJson, noCommand, unreachable, unreachableJson, noTarget] =
    await Promise.all([
      cli(cwd, ["sites", "add"]),
      cli(cwd, ["sites", "list", "--bogus"]),
      cli(cwd, ["map", "add", "s1", "web", "h:80", "--port", "x"]),
      cli(cwd, ["sites", "add", "--json"]),
      cli(cwd, ["map"]),
      cli(cwd, ["sites", "list"], { RELAY_FLEET_API_URL: url }),
      cli(cwd, ["sites", "show", "s1", "--json"], { RELAY_FLEET_API_URL: url }),
      cli(cwd, ["status", "--json"]),
    ]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /missing required argument 'siteId'/);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown option '--bogus'/);
  assert.equal(badValue.code, 2);
  assert.equal(noCommand.code, 2, "a group without its subcommand is a usage error");
  assert.equal(missingJson.code, 2);
  assert.deepEqual(JSON.parse(missingJson.stderr), {
    error: { code: "RF_ERR_CLI_USAGE", message: "missing required argument 'siteId' (or --from-file <csv>)" },
  });
  assert.equal(unreachable.code, 1);
  assert.match(unreachable.stderr, /^relay-fleet: The rollout API at .* is unreachable/);
  assert.equal(unreachableJson.code, 1);
  const e = JSON.parse(unreachableJson.stderr) as { error: { code: string; message: string } };
  assert.equal(e.error.code, "RF_ERR_CLI_UNREACHABLE");
  assert.match(e.error.message, /unreachable/);
  assert.equal(unreachableJson.stdout, "");
  assert.equal(noTarget.code, 1);
  assert.equal(
    (JSON.parse(noTarget.stderr) as { error: { code: string } }).error.code,
    "RF_ERR_CLI_DISCOVERY",
  );
});

test("every command has a description and takes --json", () => {
  const walk = (c: Command, path: string[]): void => {
    for (const sub of c.commands) {
      const name = [...path, sub.name()].join(" ");
      assert.ok(sub.description().length > 10, `${name} has a description`);
      if (sub.commands.length === 0)
        assert.ok(
          sub.options.some((o) => o.long === "--json"),
          `${name} --json`,
        );
      walk(sub, [...path, sub.name()]);
    }
  };
  const program = buildProgram();
  assert.ok(program.commands.length >= 4);
  walk(program, []);
  assert.equal(wantsJson(["sites", "list", "--json"]), true);
  assert.equal(wantsJson(["sites", "add", "--", "--json"]), false, "after -- it is an argument");
});

test("NO_COLOR counts only when non-empty, in the CLI and the simulation alike", () => {
  const tty = { isTTY: true } as NodeJS.WriteStream;
  const pipe = { isTTY: false } as NodeJS.WriteStream;
  assert.equal(useColor(tty, {}), true);
  assert.equal(useColor(tty, { NO_COLOR: "" }), true);
  assert.equal(useColor(tty, { NO_COLOR: "1" }), false);
  assert.equal(useColor(pipe, {}), false);
  assert.equal(colorWanted(true, { NO_COLOR: "" }), true);
  assert.equal(colorWanted(true, { NO_COLOR: "0" }), false, "any non-empty value, even 0");
  const sim = readFileSync(join(REPO_ROOT, "sim/index.ts"), "utf8");
  assert.match(sim, /colorWanted\(/, "the simulation's start screen uses the same rule");
  assert.doesNotMatch(sim, /NO_COLOR/);
});

test("map add / update --port-name send the mapping's azbridge port name to the rollout API", async (t) => {
  const bodies: Array<{ method: string; url: string; body: unknown }> = [];
  const server = createHttpServer((req, res) => {
    let text = "";
    req.on("data", (d: Buffer) => {
      text += d.toString();
    });
    req.on("end", () => {
      bodies.push({
        method: req.method ?? "",
        url: req.url ?? "",
        body: text ? JSON.parse(text) : undefined,
      });
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => server.close());
  const env = { RELAY_FLEET_API_URL: `http://127.0.0.1:${(server.address() as { port: number }).port}` };
  const cwd = tempDir(t);
  const add = await cli(
    cwd,
    ["map", "add", "s1", "rdp_main", "10.0.0.5:3389", "--port-name", "rdp.main"],
    env,
  );
  assert.equal(add.code, 0, add.stderr);
  const update = await cli(cwd, ["map", "update", "s1", "rdp_main", "--port-name", "plant/rdp"], env);
  assert.equal(update.code, 0, update.stderr);
  assert.deepEqual(
    bodies.map((b) => [b.method, b.url, b.body]),
    [
      ["POST", "/api/sites/s1/mappings/rdp_main", { target: "10.0.0.5:3389", portName: "rdp.main" }],
      ["PATCH", "/api/sites/s1/mappings/rdp_main", { portName: "plant/rdp" }],
    ],
  );
  const help = await cli(cwd, ["map", "add", "--help"]);
  assert.match(help.stdout.replace(/\s+/g, " "), /--port-name <name> .*azbridge/);
  // The CLI checks names itself, with lib/twin's one rule: a usage error, and no request sent.
  const [dotted, reserved, badPortName] = await Promise.all([
    cli(cwd, ["map", "add", "s1", "rdp.main", "10.0.0.5:3389"], env),
    cli(cwd, ["map", "remove", "s1", "__proto__", "--json"], env),
    cli(cwd, ["map", "update", "s1", "rdp_main", "--port-name", "rdp main"], env),
  ]);
  assert.equal(dotted.code, 2);
  assert.match(
    dotted.stderr,
    /'rdp\.main' is invalid for argument 'name'\. mapping names are 1-64 characters/,
  );
  assert.equal(reserved.code, 2);
  const error = (JSON.parse(reserved.stderr) as { error: { code: string; message: string } }).error;
  assert.equal(error.code, "RF_ERR_CLI_USAGE");
  assert.match(error.message, /"__proto__" is a reserved name/);
  assert.equal(badPortName.code, 2);
  assert.match(badPortName.stderr, /--port-name <name>.*logical port names are 1-255 characters/);
  assert.equal(bodies.length, 2, "no request for a refused name");
});
