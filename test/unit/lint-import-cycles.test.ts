/**
 * `npm run lint` refuses an import circle: biome.json turns on Biome's noImportCycles as an error,
 * type-only imports included (a circle of types is still two files that cannot be read apart).
 * Proven on a throwaway project that takes the repository's linter settings, so the check runs
 * on two files instead of the whole tree.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { REPO_ROOT } from "../../sim/child-process.ts";
import { tempDir } from "../helpers/index.ts";

const BIOME = join(REPO_ROOT, "node_modules", ".bin", "biome");

function lintProject(dir: string, files: Record<string, string>): { status: number | null; output: string } {
  const config = JSON.parse(readFileSync(join(REPO_ROOT, "biome.json"), "utf8")) as { linter: unknown };
  writeFileSync(join(dir, "biome.json"), JSON.stringify({ linter: config.linter }));
  writeFileSync(join(dir, "package.json"), "{}\n");
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const run = spawnSync(BIOME, ["lint", "."], { cwd: dir, encoding: "utf8", timeout: 60_000 });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

test("lint fails on a circle of type-only imports between two files", (t) => {
  const { status, output } = lintProject(tempDir(t, "rf-cycles-"), {
    "a.ts": 'import type { B } from "./b.ts";\nexport interface A {\n  b?: B;\n}\n',
    "b.ts": 'import type { A } from "./a.ts";\nexport interface B {\n  a?: A;\n}\n',
  });
  assert.notEqual(status, 0, output);
  assert.match(output, /noImportCycles/);
});

test("lint passes the same two files once the shared type has its own file", (t) => {
  const { status, output } = lintProject(tempDir(t, "rf-cycles-"), {
    "types.ts": "export interface A {\n  b?: B;\n}\nexport interface B {\n  a?: A;\n}\n",
    "a.ts": 'import type { A } from "./types.ts";\nexport const a: A = {};\n',
    "b.ts": 'import type { B } from "./types.ts";\nexport const b: B = {};\n',
  });
  assert.equal(status, 0, output);
  assert.doesNotMatch(output, /noImportCycles/);
});
