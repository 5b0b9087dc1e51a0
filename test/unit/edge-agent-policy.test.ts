/** The edge-agent stand-in's pure rules: restart policies as IoT Edge defines them, image names. */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  byStartupOrder,
  DesiredModule,
  exitedState,
  newRunningModule,
  readAgentDesired,
  restartWanted,
} from "../../sim/edge-agent-state.ts";
import { imageName, moduleImages } from "../../sim/module-images.ts";

test("restart policies: always after any exit, on-failure / on-unhealthy after a crash, never", () => {
  assert.deepEqual(
    (["always", "on-failure", "on-unhealthy", "never"] as const).map((p) => [
      restartWanted(p, 0),
      restartWanted(p, 1),
      restartWanted(p, "SIGKILL"),
    ]),
    [
      [true, true, true],
      [false, true, true],
      [false, true, true],
      [false, false, false],
    ],
  );
});

test("a deployment's module entry: defaults as IoT Edge's, a missing image refused", () => {
  const m = DesiredModule.parse({ settings: { image: "r/relaylistener:1" } });
  assert.equal(m.status, "running");
  assert.equal(m.restartPolicy, "always");
  assert.equal(DesiredModule.safeParse({ settings: {} }).success, false);
  assert.equal(
    DesiredModule.safeParse({ settings: { image: "x" }, restartPolicy: "sometimes" }).success,
    false,
  );
});

test("an image names the repository's module by its last path segment, any tag or registry", () => {
  assert.equal(imageName("localhost:5000/relaylistener:0.1.0-amd64"), "relaylistener");
  assert.equal(imageName("contoso.azurecr.io/team/RelayListener@sha256:abc"), "relaylistener");
  const resolve = moduleImages();
  assert.equal(
    resolve("fleetregistry.azurecr.io/relaylistener:0.2.0-ci4-arm64v8")?.script,
    "modules/relayListener/src/main.ts",
  );
  assert.equal(resolve("localhost:5000/relaylistener:1")?.isReady({ msg: "relayListener ready" }), true);
  assert.equal(resolve("mcr.microsoft.com/azureiotedge-simulated-temperature-sensor:1.0"), undefined);
});

test("desired properties: a bad module is a problem and the others still run, in startupOrder", () => {
  const read = readAgentDesired({
    $version: 7,
    modules: {
      late: { settings: { image: "r/a:1" } },
      first: { startupOrder: 0, settings: { image: "r/b:1" } },
      broken: { settings: {} },
    },
  });
  assert.equal(read.version, 7);
  assert.ok(read.wanted);
  assert.deepEqual(
    byStartupOrder(read.wanted).map(([id]) => id),
    ["first", "late"],
  );
  assert.equal(read.problems.length, 1);
  assert.match(read.problems[0] ?? "", /^modules\.broken: settings\.image/);
  const bad = readAgentDesired({ modules: "none" });
  assert.equal(bad.wanted, undefined);
  assert.match(bad.problems[0] ?? "", /\$edgeAgent desired properties/);
});

test("an exit is stopped when asked, backoff when it restarts, failed when it does not", () => {
  const mod = newRunningModule(
    "m",
    DesiredModule.parse({ settings: { image: "r/a:1" } }),
    "running",
    undefined,
  );
  const after = (asked: boolean, restarts: boolean) =>
    exitedState(mod.state, 1, { asked, restarts, anyRunning: false }).runtimeStatus;
  assert.deepEqual(
    [after(true, false), after(false, true), after(false, false)],
    ["stopped", "backoff", "failed"],
  );
  const signalled = exitedState(mod.state, "SIGKILL", { asked: false, restarts: true, anyRunning: true });
  assert.equal(signalled.exitCode, 137);
  assert.equal(signalled.runtimeStatus, "running", "another replica still runs");
});
