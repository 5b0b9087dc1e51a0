/**
 * `.ci/run` is what CI executes on a fresh clone: a clean install, then the linters (tsx runs
 * TypeScript without type-checking, so only `tsc --noEmit` catches a type error), then the
 * README's test command, in that order and stopping at the first failure.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { REPO_ROOT } from "../helpers/index.ts";

const commands = readFileSync(join(REPO_ROOT, ".ci/run"), "utf8")
  .split("\n")
  .map((line) => line.trim())
  .filter((line) => /^npm\s/.test(line));

test(".ci/run stops at the first failure", () => {
  assert.match(readFileSync(join(REPO_ROOT, ".ci/run"), "utf8"), /^set -euo pipefail$/m);
});

test(".ci/run installs cleanly, lints (Biome + tsc --noEmit), then runs the README's test command", () => {
  assert.deepEqual(commands, ["npm ci", "npm run lint", "npm test"]);
  const lint = (
    JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as { scripts: { lint: string } }
  ).scripts.lint;
  assert.match(lint, /biome check/);
  assert.match(lint, /tsc\b.*--noEmit/);
  assert.match(
    readFileSync(join(REPO_ROOT, "README.md"), "utf8").split("\n").slice(0, 8).join("\n"),
    /npm ci && npm test/,
  );
});

test(".ci/run installs the Debian packages the tests drive when missing, with one apt-get update", () => {
  const script = readFileSync(join(REPO_ROOT, ".ci/run"), "utf8");
  assert.match(script, /missing\+=\(chromium\)/);
  assert.match(script, /missing\+=\(prometheus\)/);
  assert.equal(script.match(/apt-get update/g)?.length, 1);
  assert.match(script, /apt-get install -y .*"\$\{missing\[@\]\}"/);
  assert.ok(script.indexOf("apt-get install") < script.indexOf("npm test"), "before the tests");
});
