/**
 * Docker cannot run here, so the Dockerfiles are checked by construction: every platform of
 * module.json has its file, every COPY source exists, every `npm run X` is a package script,
 * the build stage runs `npm ci` + `npm run build`, the runtime stage installs with
 * `--omit=dev` and runs as `USER node`, the CMD names the compiled form of a real source file,
 * and the debug image exposes the inspector on 9229.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { REPO_ROOT } from "../helpers/index.ts";

const MODULE_DIR = join(REPO_ROOT, "modules/relayListener");
const moduleJson = JSON.parse(readFileSync(join(MODULE_DIR, "module.json"), "utf8")) as {
  image: { contextPath: string; tag: { platforms: Record<string, string> } };
};
const scripts = (
  JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> }
).scripts;
const buildOut = (
  JSON.parse(readFileSync(join(REPO_ROOT, "tsconfig.json"), "utf8")) as {
    compilerOptions: { outDir: string };
  }
).compilerOptions.outDir;

test("module.json lists amd64, arm64v8, arm32v7 and amd64.debug; context is the repository root", () => {
  assert.deepEqual(Object.keys(moduleJson.image.tag.platforms).sort(), [
    "amd64",
    "amd64.debug",
    "arm32v7",
    "arm64v8",
  ]);
  assert.equal(join(MODULE_DIR, moduleJson.image.contextPath), `${REPO_ROOT}/`);
});

for (const [platform, file] of Object.entries(moduleJson.image.tag.platforms)) {
  test(`Dockerfile for ${platform} (${file}) is consistent with the repository`, () => {
    const path = join(MODULE_DIR, file);
    assert.ok(existsSync(path), `${file} missing`);
    const lines = readFileSync(path, "utf8")
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith("#"));
    const stages = lines.filter((l) => l.startsWith("FROM "));
    assert.equal(stages.length, 2, "multi-stage: build + runtime");
    const context = join(MODULE_DIR, moduleJson.image.contextPath);
    for (const line of lines.filter((l) => l.startsWith("COPY ") && !l.includes("--from="))) {
      const parts = line
        .split(/\s+/)
        .slice(1)
        .filter((p) => !p.startsWith("--"));
      for (const src of parts.slice(0, -1))
        assert.ok(existsSync(join(context, src)), `${file}: COPY source ${src} does not exist`);
    }
    for (const line of lines.filter((l) => l.startsWith("RUN "))) {
      for (const m of line.matchAll(/npm run ([\w:-]+)/g))
        assert.ok(scripts[m[1]!], `${file}: npm run ${m[1]} is not a package script`);
    }
    const runtimeStart = lines.indexOf(stages[1]!);
    const build = lines.slice(0, runtimeStart).join("\n");
    const runtime = lines.slice(runtimeStart).join("\n");
    assert.match(build, /RUN npm ci/);
    assert.match(build, /RUN npm run build/);
    assert.match(runtime, /npm ci --omit=dev/);
    assert.match(runtime, /^USER node$/m);
    const cmd = lines.find((l) => l.startsWith("CMD "))!;
    const main = (JSON.parse(cmd.slice(4)) as string[]).find((a) => a.endsWith(".js"))!;
    assert.ok(main.startsWith(`${buildOut}/`), `${file}: CMD does not run the build output`);
    const source = main.slice(buildOut.length + 1).replace(/\.js$/, ".ts");
    assert.ok(existsSync(join(REPO_ROOT, source)), `${file}: CMD runs ${main}, but ${source} does not exist`);
    if (platform.endsWith(".debug")) {
      assert.match(runtime, /EXPOSE 9229/);
      assert.match(cmd, /--inspect=0\.0\.0\.0:9229/);
    } else assert.doesNotMatch(runtime, /inspect/);
  });
}

test("every image is on a supported Node.js LTS (22 or 24); amd64 images are pinned to linux/amd64", () => {
  const files = [
    ...Object.entries(moduleJson.image.tag.platforms).map(([p, f]) => [p, join(MODULE_DIR, f)] as const),
    ["gateway", join(REPO_ROOT, "cloud/gateway/Dockerfile")] as const,
  ];
  for (const [platform, path] of files) {
    const froms = readFileSync(path, "utf8")
      .split("\n")
      .filter((l) => l.startsWith("FROM "));
    assert.ok(froms.length > 0, `${path}: no FROM`);
    for (const from of froms) {
      if (/^FROM\s+(--platform=\S+\s+)?\w+\s+AS\s/i.test(from) && !/node/.test(from)) continue;
      assert.match(from, /node:(22|24)[-\s]|node:(22|24)$/, `${platform}: ${from} is not Node 22/24`);
      if (platform.startsWith("amd64"))
        assert.match(from, /^FROM --platform=linux\/amd64 /, `${platform}: ${from}`);
    }
  }
});
