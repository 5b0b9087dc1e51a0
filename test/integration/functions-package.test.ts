/**
 * Section 4 of issue 13: `npm run package:functions` makes a Functions app that can be
 * published as it is. The package is loaded the way the Functions Node worker loads an app —
 * `main` of the package folder's package.json, resolved from that folder (a glob is allowed), with
 * the worker's `@azure/functions-core` served from inside the process — and must register the
 * same functions, triggers and auth levels as the sources. Then its local server
 * (`node dist/serve-local.js`, from the package alone) serves the API against Azurite.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import Module from "node:module";
import { join, posix } from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";
import { packageFunctions } from "../../scripts/package-functions.ts";
import { startAzurite } from "../../sim/azurite.ts";
import { startIotHubEmulator } from "../../sim/iothub-emulator/index.ts";
import { startRelayEmulator } from "../../sim/relay-emulator/index.ts";
import { REPO_ROOT, spawnNode, tempDir } from "../helpers/index.ts";

interface Registered {
  name: string;
  bindings: Record<string, Record<string, unknown>>;
}
let registered: Registered[] = [];
const fakeCore = {
  version: "4.0.0",
  registerFunction(metadata: Registered) {
    registered.push({ name: metadata.name, bindings: metadata.bindings });
    return { dispose() {} };
  },
  setProgrammingModel() {},
  getProgrammingModel: () => ({ name: "@azure/functions", version: "4" }),
  registerHook: () => ({ dispose() {} }),
  log: () => {},
};
const loader = Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown };
const originalLoad = loader._load;
loader._load = function (request: string, ...rest: unknown[]) {
  if (request === "@azure/functions-core") return fakeCore;
  return originalLoad.call(this, request, ...rest);
};

/** The files `main` names, resolved from the app folder as the worker does (`*` globs allowed). */
function resolveMain(folder: string, main: string): string[] {
  const dir = posix.dirname(main);
  const pattern = new RegExp(
    `^${posix
      .basename(main)
      .replace(/[.+^${}()|[\]\\]/g, "\\$&")
      .replace(/\*/g, ".*")}$`,
  );
  if (!existsSync(join(folder, dir))) return [];
  return readdirSync(join(folder, dir))
    .filter((f) => pattern.test(f))
    .map((f) => join(folder, dir, f));
}

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
  "azure-iot-device",
  "azure-iot-device-mqtt",
  "commander",
];

test("npm run package:functions: a publishable folder and zip that the worker loads and that serves against Azurite", {
  timeout: 120_000,
}, async (t) => {
  const out = tempDir(t);
  const pkg = await packageFunctions(REPO_ROOT, out);

  // What the host needs, nothing more.
  assert.deepEqual(
    JSON.parse(readFileSync(join(pkg.folder, "host.json"), "utf8")),
    JSON.parse(readFileSync(join(REPO_ROOT, "cloud/functions/host.json"), "utf8")),
  );
  const manifest = JSON.parse(readFileSync(join(pkg.folder, "package.json"), "utf8")) as {
    main: string;
    type: string;
    dependencies: Record<string, string>;
  };
  assert.equal(manifest.type, "module");
  assert.deepEqual(manifest.dependencies, {}, "the bundle carries the packages; nothing to install");
  assert.ok(existsSync(join(pkg.folder, ".funcignore")));
  assert.ok(!existsSync(join(pkg.folder, "node_modules")));
  assert.ok(!existsSync(join(pkg.folder, "src")), "no sources in the package");
  for (const p of ["@azure/functions", "azure-iothub", "@azure/data-tables", "zod"])
    assert.ok(pkg.packages.includes(p), p);
  for (const p of FORBIDDEN)
    assert.ok(!pkg.packages.includes(p), `${p} must not be in the Functions package`);
  t.diagnostic(
    `Functions package: zip ${(pkg.zipBytes / 1024 / 1024).toFixed(2)} MiB, ${pkg.packages.length} bundled packages`,
  );
  if (existsSync("/usr/bin/unzip")) {
    const listed = spawnSync("unzip", ["-Z1", pkg.zip], { encoding: "utf8" });
    assert.equal(listed.status, 0, listed.stderr);
    const names = listed.stdout.trim().split("\n").sort();
    assert.ok(names.includes("host.json") && names.includes("package.json") && names.includes(manifest.main));
    assert.equal(spawnSync("unzip", ["-tq", pkg.zip]).status, 0, "the zip is intact");
  }

  // Load it as the worker does, then the sources, and compare what each registers.
  process.env.RECONCILE_SCHEDULE = "0 */5 * * * *";
  const mains = resolveMain(pkg.folder, manifest.main);
  assert.ok(mains.length > 0, `main ${manifest.main} resolves to no file in the package`);
  for (const file of mains) await import(pathToFileURL(file).href);
  const fromPackage = registered;
  registered = [];
  await import("../../cloud/functions/src/index.ts");
  const fromSource = registered;
  const view = (list: Registered[]) =>
    list
      .map((r) => ({
        name: r.name,
        bindings: Object.values(r.bindings)
          .map((b) => ({
            type: b.type,
            direction: b.direction,
            authLevel: b.authLevel,
            methods: b.methods,
            route: b.route,
            schedule: b.schedule,
          }))
          .sort((a, b) => String(a.type).localeCompare(String(b.type))),
      }))
      .sort((a, b) => a.name.localeCompare(b.name));
  assert.ok(fromPackage.length >= 9, `only ${fromPackage.length} functions registered from the package`);
  assert.deepEqual(view(fromPackage), view(fromSource));
  for (const r of fromPackage) {
    for (const b of Object.values(r.bindings)) {
      if (b.type === "httpTrigger") assert.equal(b.authLevel, "function", `${r.name} needs a function key`);
    }
  }

  // The package's local server, from the package folder alone, against Azurite and the emulators.
  const [azurite, hub, relay] = await Promise.all([
    startAzurite(),
    startIotHubEmulator(),
    startRelayEmulator(),
  ]);
  t.after(() => Promise.all([azurite.close(), hub.close(), relay.close()]));
  const key = "package-test-key";
  const server = spawnNode(t, ["dist/serve-local.js"], {
    cwd: pkg.folder,
    label: "functions package serve-local",
    env: {
      IOTHUB_CONNECTION_STRING: hub.serviceConnectionString,
      IOTHUB_REST_PORT: String(hub.httpsPort),
      IOTHUB_CA_FILE: hub.caFile,
      LEDGER_CONNECTION_STRING: azurite.connectionString,
      RELAY_ENDPOINT: relay.url,
      RELAY_MANAGE_KEY_NAME: relay.manageKeyName,
      RELAY_MANAGE_KEY: relay.manageKey,
      RELAY_PORT_RANGES: "44000-44099",
      RECONCILE_SCHEDULE: "0 */5 * * * *",
      ROLLOUT_FUNCTION_KEY: key,
      SITE_PROFILES: JSON.stringify({ default: { mappings: { web: { target: "127.0.0.1:8080" } } } }),
    },
  });
  const m = await server.waitForLine(/"event":"listening","url":"([^"]+)"/, 30_000);
  const url = m[1]!;
  const call = (method: string, path: string, body?: unknown) =>
    fetch(`${url}${path}`, {
      method,
      headers: { "x-functions-key": key, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  const created = await call("POST", "/api/sites", { siteId: "pkg-site" });
  assert.ok(
    created.status === 201 || created.status === 200,
    `POST /api/sites: ${created.status} ${await created.clone().text()}`,
  );
  const got = await call("GET", "/api/sites/pkg-site");
  assert.equal(got.status, 200);
  assert.equal(((await got.json()) as { siteId: string }).siteId, "pkg-site");
  assert.equal((await fetch(`${url}/api/sites`)).status, 401, "the function key is required");
});
