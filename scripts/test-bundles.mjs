// Builds the TypeScript entry points the tests start as child processes (emulators, gateway,
// module, Functions host) into plain ESM once per test run, so each of the hundred-odd children a
// run starts skips tsx's loader thread and per-file transforms (about 1.5-2 s of CPU each on the
// 2-core CI machine; ADR 0029). npm packages stay external, resolved from node_modules as before,
// and every file's `import.meta.url` keeps naming its own source file, so paths a part resolves
// relative to itself (the repository root, package.json, createRequire) are unchanged.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = resolve(fileURLToPath(new URL("..", import.meta.url)));

/** Entry points started as children by sim/ and test/helpers (repository-relative). */
export const CHILD_ENTRIES = [
  "sim/relay-emulator/main.ts",
  "sim/iothub-emulator/main.ts",
  "cloud/gateway/src/main.ts",
  "cloud/functions/src/serve-local.ts",
  "modules/relayListener/src/main.ts",
];

const keepSourceUrls = {
  name: "keep-source-urls",
  setup(build) {
    build.onLoad({ filter: /\.ts$/ }, (args) => ({
      contents: readFileSync(args.path, "utf8").replaceAll(
        "import.meta.url",
        JSON.stringify(pathToFileURL(args.path).href),
      ),
      loader: "ts",
    }));
  },
};

/**
 * Bundles CHILD_ENTRIES into a fresh directory under node_modules/.cache (inside the repository,
 * so external packages resolve from its node_modules) and writes `manifest.json` (entry → file).
 * Returns the directory; the caller removes it.
 */
export async function buildTestBundles() {
  const { build } = await import("esbuild");
  const cache = join(ROOT, "node_modules", ".cache", "relay-fleet");
  mkdirSync(cache, { recursive: true });
  const dir = mkdtempSync(join(cache, "test-bundles-"));
  // Each output keeps its entry's path (cloud/gateway/src/main.mjs), so a process list still
  // tells the parts apart.
  const outName = (entry) => entry.replace(/\.ts$/, "");
  const entryPoints = Object.fromEntries(CHILD_ENTRIES.map((e) => [outName(e), join(ROOT, e)]));
  try {
    await build({
      entryPoints,
      bundle: true,
      splitting: true,
      platform: "node",
      format: "esm",
      target: "node20",
      packages: "external",
      outdir: dir,
      outExtension: { ".js": ".mjs" },
      logLevel: "warning",
      plugins: [keepSourceUrls],
    });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const manifest = Object.fromEntries(CHILD_ENTRIES.map((e) => [e, join(dir, `${outName(e)}.mjs`)]));
  writeFileSync(join(dir, "manifest.json"), `${JSON.stringify(manifest, null, 2)}\n`);
  return dir;
}
