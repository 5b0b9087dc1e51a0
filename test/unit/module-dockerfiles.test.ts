/**
 * Docker cannot run here, so the Dockerfiles are checked by construction (and assembled and
 * started by test/integration/images.test.ts): every platform of module.json has its file, every
 * COPY source exists, every `npm run X` is a package script, the build stage bundles the module
 * (ADR 0008), the runtime stage copies only the bundle and runs it as `USER node`, the debug image
 * exposes the inspector on 9229, and every image is on a Node.js LTS.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { dockerIgnoreFilter } from "../helpers/docker-image.ts";
import { REPO_ROOT } from "../helpers/index.ts";

const MODULE_DIR = join(REPO_ROOT, "modules/relayListener");
const moduleJson = JSON.parse(readFileSync(join(MODULE_DIR, "module.json"), "utf8")) as {
  image: { contextPath: string; tag: { platforms: Record<string, string> } };
};
const scripts = (
  JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> }
).scripts;

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
    // ADR 0008: the build stage bundles the module; the runtime stage is Node plus that folder.
    assert.match(build, /RUN npm ci/);
    assert.match(build, /RUN npm run bundle -- relayListener/);
    assert.match(runtime, /^COPY --from=build \/app\/dist\/bundle\/relayListener \.\/$/m);
    assert.doesNotMatch(runtime, /npm (ci|install)/, "no packages installed in the runtime image");
    assert.match(runtime, /^USER node$/m);
    const cmd = lines.find((l) => l.startsWith("CMD "))!;
    assert.equal((JSON.parse(cmd.slice(4)) as string[]).at(-1), "main.js");
    if (platform.endsWith(".debug")) {
      assert.match(runtime, /EXPOSE 9229/);
      assert.match(cmd, /--inspect=0\.0\.0\.0:9229/);
      assert.match(build, /--sourcemap/);
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

test(".dockerignore sends only what the Dockerfiles copy: no .env, .git, node_modules or local state", () => {
  const included = dockerIgnoreFilter(readFileSync(join(REPO_ROOT, ".dockerignore"), "utf8"));
  for (const secret of [
    ".env",
    "cloud/functions/.env",
    ".git/HEAD",
    "node_modules/ws/index.js",
    "config/deployment.amd64.json",
    ".sim-state/sim.json",
    "dist/bundle/gateway/main.js",
    "cloud/functions/local.settings.json",
    "test/unit/x.test.ts",
    "lib/twin/schema.test.ts",
  ]) {
    assert.equal(included(secret), false, `${secret} must not be in the build context`);
  }
  for (const needed of [
    "package.json",
    "package-lock.json",
    "stubs/http/index.js",
    "tsconfig.json",
    "scripts/bundle.ts",
    "lib/log.ts",
    "modules/relayListener/src/main.ts",
    "cloud/gateway/src/main.ts",
  ]) {
    assert.equal(included(needed), true, `${needed} is needed by a Dockerfile`);
  }
});
