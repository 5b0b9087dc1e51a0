/**
 * `npm run manifests`: what `iotedgedev solution genconfig` does, without Python or Docker.
 * For each deployment template and each platform of every module.json, it expands
 * `${MODULES.<name>[.debug|.<platform>]}` to the image tag iotedgedev would build
 * (`<repository>:<version><CONTAINER_TAG>-<platform>`), `${VAR}` from the environment, `.env` or
 * `.env.example`, drops `$schema-template`, stringifies each `createOptions` and splits it into
 * 512-character chunks (`createOptions`, `createOptions01`, … as iotedgedev's
 * TWIN_VALUE_MAX_SIZE; more than 8 chunks is an error), and writes
 * `config/<template prefix>.<platform>.json`. It also refreshes the twin JSON Schema in manifests/.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { TWIN_SCHEMA_PATH, twinJsonSchemaText } from "../lib/twin/index.ts";

export const TWIN_VALUE_MAX_SIZE = 512;
export const MAX_CREATE_OPTIONS_CHUNKS = 8;

export interface ModuleInfo {
  /** Folder name under modules/ (the placeholder name). */
  name: string;
  repository: string;
  version: string;
  platforms: string[];
}

/** Parses `.env` text: KEY=VALUE, optional quotes, `#` comments. */
export function parseDotEnv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (!m || line.trimStart().startsWith("#")) continue;
    let value = m[2] ?? "";
    if (/^".*"$|^'.*'$/.test(value)) value = value.slice(1, -1);
    out[m[1]!] = value;
  }
  return out;
}

/** Replaces `${VAR}` (not `${MODULES…}`) with values from `env`; unknown variables become "". */
export function expandEnv(text: string, env: Record<string, string | undefined>): string {
  return text.replace(
    /\$\{(?!MODULES[.}])(?!MODULEDIR<)([A-Za-z_][A-Za-z0-9_]*)\}/g,
    (_m, name: string) => env[name] ?? "",
  );
}

export function readModules(
  root: string,
  modulesPath: string,
  env: Record<string, string | undefined>,
): ModuleInfo[] {
  const dir = join(root, modulesPath);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((name) => existsSync(join(dir, name, "module.json")))
    .map((name) => {
      const json = JSON.parse(expandEnv(readFileSync(join(dir, name, "module.json"), "utf8"), env)) as {
        image: { repository: string; tag: { version: string; platforms: Record<string, string> } };
      };
      return {
        name,
        repository: json.image.repository,
        version: json.image.tag.version,
        platforms: Object.keys(json.image.tag.platforms),
      };
    });
}

/** The image tag iotedgedev builds for a module and platform. */
export function imageFor(mod: ModuleInfo, platform: string, containerTag = ""): string {
  if (!mod.platforms.includes(platform)) {
    throw new Error(`module ${mod.name} has no platform '${platform}' in module.json`);
  }
  return `${mod.repository}:${mod.version}${containerTag}-${platform}`;
}

function expandModules(text: string, modules: ModuleInfo[], platform: string, containerTag: string): string {
  return text.replace(
    /\$\{MODULES\.([A-Za-z0-9_-]+)(?:\.([A-Za-z0-9.]+))?\}/g,
    (_m, name: string, variant?: string) => {
      const mod = modules.find((m) => m.name === name);
      if (!mod) throw new Error(`\${MODULES.${name}} names no module under modules/`);
      const p = variant === undefined ? platform : variant === "debug" ? `${platform}.debug` : variant;
      return imageFor(mod, p, containerTag);
    },
  );
}

/** Stringifies and chunks every `settings.createOptions` object, as iotedgedev does. */
export function splitCreateOptions(settings: Record<string, unknown>): void {
  const value = settings.createOptions;
  if (value === undefined) return;
  const text = typeof value === "string" ? value : JSON.stringify(value);
  const chunks: string[] = [];
  for (let i = 0; i < text.length; i += TWIN_VALUE_MAX_SIZE)
    chunks.push(text.slice(i, i + TWIN_VALUE_MAX_SIZE));
  if (chunks.length > MAX_CREATE_OPTIONS_CHUNKS) {
    throw new Error(
      `createOptions is ${text.length} characters; at most ${TWIN_VALUE_MAX_SIZE * MAX_CREATE_OPTIONS_CHUNKS}`,
    );
  }
  delete settings.createOptions;
  chunks.forEach((chunk, i) => {
    settings[i === 0 ? "createOptions" : `createOptions${String(i).padStart(2, "0")}`] = chunk;
  });
}

type Json = Record<string, unknown>;

/** Expands one template for one platform into a deployment manifest object. */
export function generateDeployment(
  templateText: string,
  opts: { platform: string; env: Record<string, string | undefined>; modules: ModuleInfo[] },
): Json {
  const expanded = expandModules(
    expandEnv(templateText, opts.env),
    opts.modules,
    opts.platform,
    opts.env.CONTAINER_TAG ?? "",
  );
  const manifest = JSON.parse(expanded) as Json;
  delete manifest["$schema-template"];
  const content = manifest.modulesContent as Json;
  const agent = (content.$edgeAgent as Json)["properties.desired"] as Json;
  for (const group of ["systemModules", "modules"]) {
    for (const mod of Object.values((agent[group] ?? {}) as Record<string, Json>)) {
      if (mod.settings) splitCreateOptions(mod.settings as Json);
    }
  }
  return manifest;
}

/** Loads `.env` (or `.env.example`) under the process environment, which wins. */
export function loadEnv(root: string): Record<string, string | undefined> {
  const file = existsSync(join(root, ".env")) ? join(root, ".env") : join(root, ".env.example");
  const fromFile = existsSync(file) ? parseDotEnv(readFileSync(file, "utf8")) : {};
  return { ...fromFile, ...process.env };
}

/** Generates every manifest; returns the written paths (repo-relative). */
export function generateAll(root: string, outDir?: string): string[] {
  const env = loadEnv(root);
  const modules = readModules(root, env.MODULES_PATH || "modules", env);
  const out = outDir ?? join(root, env.CONFIG_OUTPUT_DIR || "config");
  mkdirSync(out, { recursive: true });
  const written: string[] = [];
  const templates: Array<[string, boolean]> = [
    [env.DEPLOYMENT_CONFIG_TEMPLATE_FILE || "deployment.template.json", false],
    [env.DEPLOYMENT_CONFIG_DEBUG_TEMPLATE_FILE || "deployment.debug.template.json", true],
  ];
  const platforms = [...new Set(modules.flatMap((m) => m.platforms))].filter((p) => !p.endsWith(".debug"));
  for (const [template, debug] of templates) {
    const path = join(root, template);
    if (!existsSync(path)) continue;
    const text = readFileSync(path, "utf8");
    const prefix = template.replace(/\.template\.json$/, "");
    // A debug manifest exists only for platforms every module has a .debug image for.
    const usable = debug
      ? platforms.filter((p) => modules.every((m) => m.platforms.includes(`${p}.debug`)))
      : platforms;
    for (const platform of usable) {
      const manifest = generateDeployment(text, { platform, env, modules });
      const file = join(out, `${prefix}.${platform}.json`);
      writeFileSync(file, `${JSON.stringify(manifest, null, 2)}\n`);
      written.push(file);
    }
  }
  return written;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
  writeFileSync(join(root, TWIN_SCHEMA_PATH), twinJsonSchemaText());
  // Keep the committed schema in the repository's format (Biome), so lint stays clean.
  spawnSync(
    process.execPath,
    [join(root, "node_modules/@biomejs/biome/bin/biome"), "format", "--write", TWIN_SCHEMA_PATH],
    {
      cwd: root,
      stdio: "ignore",
    },
  );
  for (const file of generateAll(root)) console.log(`wrote ${file}`);
  console.log(`wrote ${join(root, TWIN_SCHEMA_PATH)}`);
}
