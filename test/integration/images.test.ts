/**
 * Section 3 of issue 13: each runtime image carries only what its part imports. Docker cannot
 * run here, so each image's file set is assembled exactly as its Dockerfile's COPY and RUN steps
 * say (test/helpers/docker-image.ts, `.dockerignore` applied to the context), measured, and the
 * part is started from it with the Dockerfile's CMD: the module against the emulators, the
 * gateway against Azurite. A missing file or package fails here, not on a device.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { type AssembledImage, assembleImage } from "../helpers/docker-image.ts";
import { REPO_ROOT, spawnNode, tempDir } from "../helpers/index.ts";
import { echoServer, startHarness } from "./gateway-harness.ts";
import { moduleEnv, openPort, patchDesired, startSite, waitReported } from "./module-harness.ts";

const MIB = 1024 * 1024;
/** Simulator and test tools: never in a runtime image. */
const FORBIDDEN = [
  "azurite",
  "tedious",
  "sequelize",
  "tsx",
  "esbuild",
  "node-forge",
  "fast-check",
  "aedes",
  "hyco-ws",
];

/** The npm packages a bundle took code from: esbuild marks each input file with a path comment. */
function packagesIn(image: AssembledImage): Set<string> {
  const text = readFileSync(join(image.appDir, "main.js"), "utf8");
  const names = new Set<string>();
  for (const m of text.matchAll(/^\/\/ (?:.*\/)?node_modules\/((?:@[^/\n]+\/)?[^/\n]+)\//gm))
    names.add(m[1]!);
  return names;
}

function lines(file: string): string[] {
  return readFileSync(join(REPO_ROOT, file), "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
}

test("every relayListener Dockerfile runs the same steps; only the base image differs", () => {
  const amd64 = lines("modules/relayListener/Dockerfile.amd64").filter((l) => !l.startsWith("FROM "));
  for (const p of ["arm64v8", "arm32v7"]) {
    assert.deepEqual(
      lines(`modules/relayListener/Dockerfile.${p}`).filter((l) => !l.startsWith("FROM ")),
      amd64,
      p,
    );
  }
});

test("relayListener image: app layer ≤ 25 MiB, no simulator or test tools, starts and serves against the emulators", {
  timeout: 120_000,
}, async (t) => {
  const image = assembleImage({
    context: REPO_ROOT,
    dockerfile: "modules/relayListener/Dockerfile.amd64",
    workRoot: tempDir(t),
  });
  t.diagnostic(`relayListener app layer: ${(image.appBytes / MIB).toFixed(2)} MiB`);
  assert.ok(image.appBytes <= 25 * MIB, `app layer is ${(image.appBytes / MIB).toFixed(1)} MiB`);
  const packages = packagesIn(image);
  for (const p of [
    "azure-iot-device",
    "azure-iot-device-mqtt",
    "ws",
    "zod",
    "pino",
    "prom-client",
    "ipaddr.js",
  ]) {
    assert.ok(packages.has(p), `the module imports ${p}`);
  }
  for (const p of [...FORBIDDEN, "@azure/functions", "@azure/data-tables", "commander"]) {
    assert.ok(!packages.has(p), `${p} must not be in the module image`);
  }
  assert.deepEqual(image.cmd, ["node", "main.js"]);
  assert.equal(image.env.NODE_ENV, "production");

  const site = await startSite(t, "img-site");
  const echo = await echoServer(t);
  const proc = spawnNode(t, image.cmd.slice(1), {
    cwd: image.appDir,
    env: { ...moduleEnv(t, site), ...image.env },
    label: "relayListener image",
  });
  await proc.waitForLine(/"msg":"relayListener ready"/, 30_000);
  const v = await patchDesired(site, {
    relay: site.relaySection(),
    mappings: { echo: { target: `127.0.0.1:${echo.port}` } },
  });
  const r = await waitReported(
    site,
    (x) => x.appliedDesiredVersion === v && x.relay?.status === "online",
    "the image's module applies its twin",
  );
  assert.equal(r.mappings?.echo?.state !== "refused", true);
  const { ws } = await openPort(site, "echo");
  const got = await new Promise<Buffer>((resolve) => {
    ws.on("message", (d: Buffer) => resolve(d));
    ws.send(Buffer.from("ping"));
  });
  assert.equal(got.toString(), "ping");
  ws.close();
  // The module reports the repository's version from the bundle's package.json.
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as { version: string };
  assert.match(proc.stdout(), new RegExp(`"moduleVersion":"${pkg.version.replace(/\./g, "\\.")}"`));
});

test("relayListener debug image: source maps next to the bundle, inspector in the CMD", {
  timeout: 60_000,
}, (t) => {
  const image = assembleImage({
    context: REPO_ROOT,
    dockerfile: "modules/relayListener/Dockerfile.amd64.debug",
    workRoot: tempDir(t),
  });
  assert.ok(readFileSync(join(image.appDir, "main.js.map"), "utf8").length > 0);
  assert.deepEqual(image.cmd, ["node", "--enable-source-maps", "--inspect=0.0.0.0:9229", "main.js"]);
});

test("gateway image: small app layer, no simulator or test tools, starts against Azurite", {
  timeout: 120_000,
}, async (t) => {
  const image = assembleImage({
    context: REPO_ROOT,
    dockerfile: "cloud/gateway/Dockerfile",
    workRoot: tempDir(t),
  });
  t.diagnostic(`gateway app layer: ${(image.appBytes / MIB).toFixed(2)} MiB`);
  assert.ok(image.appBytes <= 25 * MIB, `app layer is ${(image.appBytes / MIB).toFixed(1)} MiB`);
  const packages = packagesIn(image);
  for (const p of ["@azure/data-tables", "ws", "zod", "pino", "prom-client"]) assert.ok(packages.has(p), p);
  for (const p of [...FORBIDDEN, "@azure/functions", "azure-iot-device", "azure-iothub"]) {
    assert.ok(!packages.has(p), `${p} must not be in the gateway image`);
  }
  const h = await startHarness(t, "img-gw");
  const proc = spawnNode(t, image.cmd.slice(1), {
    cwd: image.appDir,
    env: {
      ...image.env,
      LEDGER_CONNECTION_STRING: h.connectionString,
      LEDGER_RELOAD_INTERVAL_MS: "0",
      GATEWAY_BIND_HOST: "127.0.0.1",
      GATEWAY_HEALTH_HOST: "127.0.0.1",
      GATEWAY_HEALTH_PORT: "0",
      LOG_LEVEL: "info",
    },
    label: "gateway image",
  });
  const m = await proc.waitForLine(/"event":"admin-listening","port":(\d+)/, 30_000);
  await proc.waitForLine(/"event":"started"/, 30_000);
  const health = await fetch(`http://127.0.0.1:${m[1]}/healthz`);
  assert.equal(health.status, 200);
});
