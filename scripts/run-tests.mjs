#!/usr/bin/env node
// Runs every test file under test/ (or the files and folders given as arguments) with Node's own
// test runner and tsx. Node 20's `--test` takes no globs, so the file list is built here.
import { spawnSync } from "node:child_process";
import { readdirSync, rmSync, statSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { buildTestBundles } from "./test-bundles.mjs";

function collect(path, out) {
  if (statSync(path).isDirectory()) {
    for (const entry of readdirSync(path).sort()) {
      if (entry === "node_modules" || entry === "helpers") continue;
      collect(join(path, entry), out);
    }
  } else if (path.endsWith(".test.ts")) {
    out.push(path);
  }
  return out;
}

const roots = process.argv.slice(2).filter((a) => !a.startsWith("-"));
const passthrough = process.argv.slice(2).filter((a) => a.startsWith("-"));
const files = (roots.length ? roots : ["test"]).flatMap((root) => collect(root, []));
if (files.length === 0) {
  console.error("run-tests: no *.test.ts files found");
  process.exit(1);
}
// Integration tests mostly wait on sockets (outage windows, idle windows, reconnect slots), so
// run one file more than there are cores, up to 4: enough to fill those waits, not so many that
// timing-sensitive tests starve on a 2-core CI machine.
const concurrency = process.env.TEST_CONCURRENCY ?? String(Math.min(4, availableParallelism() + 1));
// The children the tests start run from one plain-ESM build of their entry points made here
// (scripts/test-bundles.mjs). RELAY_FLEET_TEST_BUNDLES=off runs them through tsx instead.
const env = { ...process.env };
let bundles;
if (env.RELAY_FLEET_TEST_BUNDLES === "off") delete env.RELAY_FLEET_TEST_BUNDLES;
else env.RELAY_FLEET_TEST_BUNDLES = bundles = await buildTestBundles();
const result = spawnSync(
  process.execPath,
  [
    "--import",
    "tsx",
    "--test",
    `--test-concurrency=${concurrency}`,
    "--test-timeout=180000",
    // A file whose tests are done exits even if a stray handle (an SDK's reconnect timer after a
    // part was killed) would keep its event loop alive; its child processes die with it
    // (sim/exit-with-parent.mjs), and every test still cleans up in its own hooks.
    "--test-force-exit",
    ...passthrough,
    ...files,
  ],
  { stdio: "inherit", env },
);
if (bundles) rmSync(bundles, { recursive: true, force: true });
process.exit(result.status ?? 1);
