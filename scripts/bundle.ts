/**
 * `npm run bundle [-- part…] [--sourcemap]`: bundles each deployable part (its code and exactly
 * the packages it imports) into one ESM file with esbuild, so a runtime image copies one folder
 * and carries no node_modules, no simulator and no test tools (ADR 0008).
 *
 * Output per part, under `dist/bundle/<part>/`: `main.js`, a `package.json` (type module, the
 * repository's version, which the module reports), the licences of the bundled packages
 * (`main.js.LEGAL.txt`) and, with `--sourcemap`, `main.js.map` for the debug image.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build, type Metafile } from "esbuild";

export interface Part {
  /** Entry point, repository-relative. */
  entry: string;
  /** Packages left out of the bundle: optional native add-ons, modules the host provides. */
  external: string[];
}

/** The parts that ship: what each image (or the Functions package) runs. */
export const PARTS = {
  relayListener: { entry: "modules/relayListener/src/main.ts", external: ["bufferutil", "utf-8-validate"] },
  gateway: { entry: "cloud/gateway/src/main.ts", external: ["bufferutil", "utf-8-validate"] },
  // The Functions app is packaged by scripts/package-functions.ts (same options, two entries).
} satisfies Record<string, Part>;

export type PartName = keyof typeof PARTS;

/**
 * CommonJS packages inside an ESM bundle still call `require` for Node built-ins; give the bundle
 * a real one (and `__filename`/`__dirname` for the few that use them).
 */
export const BANNER = [
  'import { createRequire as __rfRequire } from "node:module";',
  'import { fileURLToPath as __rfPath } from "node:url";',
  'import { dirname as __rfDir } from "node:path";',
  "const require = __rfRequire(import.meta.url);",
  "const __filename = __rfPath(import.meta.url);",
  "const __dirname = __rfDir(__filename);",
].join("\n");

/** The npm packages a bundle took code from (for the report and the tests). */
export function bundledPackages(meta: Metafile): string[] {
  const names = new Set<string>();
  for (const input of Object.keys(meta.inputs)) {
    const i = input.lastIndexOf("node_modules/");
    if (i === -1) continue;
    const parts = input.slice(i + "node_modules/".length).split("/");
    names.add(parts[0]!.startsWith("@") ? `${parts[0]}/${parts[1]}` : parts[0]!);
  }
  return [...names].sort();
}

/** Bundles one part into `outDir`; returns the packages it contains. */
export async function bundlePart(
  name: PartName,
  opts: { root: string; outDir: string; sourcemap?: boolean },
): Promise<string[]> {
  const part: Part = PARTS[name];
  rmSync(opts.outDir, { recursive: true, force: true });
  mkdirSync(opts.outDir, { recursive: true });
  const result = await build({
    absWorkingDir: opts.root,
    entryPoints: [join(opts.root, part.entry)],
    outfile: join(opts.outDir, "main.js"),
    bundle: true,
    platform: "node",
    format: "esm",
    // The images run Node 22; the development machine still runs the bundle on Node 20.
    target: "node20",
    external: part.external,
    banner: { js: BANNER },
    sourcemap: opts.sourcemap ? "linked" : false,
    legalComments: "linked",
    metafile: true,
    logLevel: "warning",
  });
  const rootPkg = JSON.parse(readFileSync(join(opts.root, "package.json"), "utf8")) as { version: string };
  writeFileSync(
    join(opts.outDir, "package.json"),
    `${JSON.stringify({ name: `relay-fleet-${name}`, version: rootPkg.version, private: true, type: "module", main: "main.js" }, null, 2)}\n`,
  );
  return bundledPackages(result.metafile);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
  const args = process.argv.slice(2);
  const sourcemap = args.includes("--sourcemap");
  const names = args.filter((a) => !a.startsWith("--"));
  for (const n of names) {
    if (!(n in PARTS)) {
      console.error(`npm run bundle: unknown part '${n}' (parts: ${Object.keys(PARTS).join(", ")})`);
      process.exit(2);
    }
  }
  for (const name of (names.length > 0 ? names : Object.keys(PARTS)) as PartName[]) {
    const out = join(root, "dist/bundle", name);
    const packages = await bundlePart(name, { root, outDir: out, sourcemap });
    console.log(`bundled ${name} → dist/bundle/${name}/main.js (${packages.length} packages)`);
  }
}
