import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { CHILD_ENTRIES } from "../../scripts/test-bundles.mjs";
import { entryArgs, REPO_ROOT } from "../../sim/child-process.ts";
import { tempDir } from "../helpers/index.ts";

test("a child entry runs from the run's build when it has one, through tsx otherwise", (t) => {
  const saved = process.env.RELAY_FLEET_TEST_BUNDLES;
  t.after(() => {
    if (saved === undefined) delete process.env.RELAY_FLEET_TEST_BUNDLES;
    else process.env.RELAY_FLEET_TEST_BUNDLES = saved;
  });
  const dir = tempDir(t);
  writeFileSync(
    join(dir, "manifest.json"),
    JSON.stringify({ "sim/relay-emulator/main.ts": "/built/relay.mjs" }),
  );
  process.env.RELAY_FLEET_TEST_BUNDLES = dir;
  assert.deepEqual(entryArgs("sim/relay-emulator/main.ts"), ["/built/relay.mjs"]);
  assert.deepEqual(entryArgs("cloud/functions/src/index.ts"), [
    "--import",
    "tsx",
    join(REPO_ROOT, "cloud/functions/src/index.ts"),
  ]);
});

test("every listed child entry exists", async () => {
  const { existsSync } = await import("node:fs");
  for (const entry of CHILD_ENTRIES) assert.ok(existsSync(join(REPO_ROOT, entry)), entry);
});
