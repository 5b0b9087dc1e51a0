/**
 * `npm run package:functions`: the Functions app as `func azure functionapp publish --no-build`
 * or a zip deployment takes it, in `dist/functions-app/` and `dist/functions-app.zip`:
 *
 *   host.json            cloud/functions/host.json
 *   package.json         cloud/functions/package.json (main: dist/main.js), the repository version,
 *                        no dependencies: the bundle holds exactly the packages the app imports
 *   .funcignore          cloud/functions/.funcignore
 *   dist/main.js         the app (esbuild, ADR 0008); importing it registers every function
 *   dist/serve-local.js  the same handlers over node:http (`node dist/serve-local.js`), which is
 *                        how the simulation and the package test run it without Core Tools
 *   dist/chunks/         code both entries share; dist/*.LEGAL.txt: licences of bundled code
 *
 * `@azure/functions-core` stays external: the Functions worker provides it inside the host.
 */
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { BANNER, bundledPackages } from "./bundle.ts";
import { zipFolder } from "./zip.ts";

export const FUNCTIONS_SOURCE = "cloud/functions";

export interface FunctionsPackage {
  folder: string;
  zip: string;
  /** npm packages inside the bundle. */
  packages: string[];
  zipBytes: number;
}

export async function packageFunctions(
  root: string,
  outRoot = join(root, "dist"),
): Promise<FunctionsPackage> {
  const folder = join(outRoot, "functions-app");
  const zip = join(outRoot, "functions-app.zip");
  rmSync(folder, { recursive: true, force: true });
  rmSync(zip, { force: true });
  mkdirSync(join(folder, "dist"), { recursive: true });
  const src = join(root, FUNCTIONS_SOURCE);
  const result = await build({
    absWorkingDir: root,
    entryPoints: {
      main: join(src, "src/index.ts"),
      "serve-local": join(src, "src/serve-local.ts"),
    },
    outdir: join(folder, "dist"),
    chunkNames: "chunks/[name]-[hash]",
    splitting: true,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    external: ["bufferutil", "utf-8-validate", "@azure/functions-core"],
    banner: { js: BANNER },
    legalComments: "linked",
    metafile: true,
    logLevel: "warning",
  });
  const appPkg = JSON.parse(readFileSync(join(src, "package.json"), "utf8")) as Record<string, unknown>;
  const rootPkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
    version: string;
    engines?: Record<string, string>;
  };
  const pkg = {
    ...appPkg,
    version: rootPkg.version,
    ...(rootPkg.engines ? { engines: rootPkg.engines } : {}),
    dependencies: {},
  };
  writeFileSync(join(folder, "package.json"), `${JSON.stringify(pkg, null, 2)}\n`);
  copyFileSync(join(src, "host.json"), join(folder, "host.json"));
  copyFileSync(join(src, ".funcignore"), join(folder, ".funcignore"));
  const { bytes } = zipFolder(folder, zip);
  return { folder, zip, packages: bundledPackages(result.metafile), zipBytes: bytes };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
  const out = await packageFunctions(root);
  console.log(
    `packaged the Functions app → dist/functions-app/ and dist/functions-app.zip (${(out.zipBytes / 1024 / 1024).toFixed(1)} MiB, ${out.packages.length} bundled packages)`,
  );
}
