/**
 * `npm run manifests`: what `iotedgedev solution genconfig` does, without Python or Docker.
 * For each deployment template and each platform of every module.json, it expands
 * `${MODULES.<name>[.debug|.<platform>]}` to the image tag iotedgedev would build
 * (`<repository lower-cased>:<version>[-<CONTAINER_TAG>]-<platform>`), `${VAR}` from the
 * environment, the dotenv file (`DOTENV_FILE`, `.env` or `.env.example`, read as python-dotenv
 * reads it; an unset variable is an error naming it), drops `$schema-template`, stringifies each `createOptions` and splits it into
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
export const LAYERED_EXAMPLE = "manifests/layered-deployment.relay-listener.example.json";
export const MAX_CREATE_OPTIONS_CHUNKS = 8;

export interface ModuleInfo {
  /** Folder name under modules/ (the placeholder name). */
  name: string;
  repository: string;
  version: string;
  platforms: string[];
}

/** A `.env` line that python-dotenv would reject, or a `${VAR}` that nothing defines. */
export class GenConfigError extends Error {}

/**
 * Parses `.env` text the way python-dotenv (which iotedgedev uses) reads it: `export KEY=…`,
 * single quotes literal, double quotes with `\\n`-style escapes (and new lines inside), unquoted
 * values ending at ` #` (an inline comment), `${VAR}` / `${VAR:-default}` expanded in unquoted and
 * double-quoted values from `outer` (the process environment, which wins) and earlier keys.
 */
export function parseDotEnv(
  text: string,
  outer: Record<string, string | undefined> = {},
): Record<string, string> {
  const out: Record<string, string> = {};
  const lookup = (name: string) => outer[name] ?? out[name];
  const interpolate = (value: string) =>
    value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (_m, name: string, dflt?: string) => {
      const v = lookup(name);
      return v === undefined || v === "" ? (dflt ?? "") : v;
    });
  const src = text.replace(/\r\n?/g, "\n");
  let i = 0;
  let line = 1;
  while (i < src.length) {
    const m = /^[ \t]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_.-]*)[ \t]*(=?)[ \t]*/.exec(src.slice(i));
    const rest = src.slice(i);
    if (/^[ \t]*(#[^\n]*)?(\n|$)/.test(rest)) {
      const nl = rest.indexOf("\n");
      i += nl === -1 ? rest.length : nl + 1;
      line++;
      continue;
    }
    if (!m) throw new GenConfigError(`.env line ${line}: cannot parse '${rest.split("\n")[0]}'`);
    const key = m[1]!;
    i += m[0].length;
    let value: string;
    const quote = src[i];
    if (!m[2]) {
      // A bare key (python-dotenv: no value); anything else on the line is a typo.
      if (!/^[ \t]*(#[^\n]*)?(\n|$)/.test(src.slice(i))) {
        throw new GenConfigError(`.env line ${line}: cannot parse '${rest.split("\n")[0]}'`);
      }
      value = "";
    } else if (quote === "'" || quote === '"') {
      const close = quote === "'" ? /'/g : /(?<!\\)(?:\\\\)*"/g;
      close.lastIndex = i + 1;
      const c = close.exec(src);
      if (!c) throw new GenConfigError(`.env line ${line}: ${key} has an unterminated ${quote} quote`);
      const endQuote = c.index + c[0].length - 1;
      const raw = src.slice(i + 1, endQuote);
      line += raw.split("\n").length - 1;
      value =
        quote === "'"
          ? raw.replace(/\\'/g, "'")
          : interpolate(
              raw.replace(
                /\\([\\'"abfnrtv])/g,
                (_e, ch: string) =>
                  ({ n: "\n", r: "\r", t: "\t", a: "\x07", b: "\b", f: "\f", v: "\v" })[ch] ?? ch,
              ),
            );
      i = endQuote + 1;
      const tail = /^[ \t]*(#[^\n]*)?(?=\n|$)/.exec(src.slice(i));
      if (!tail) throw new GenConfigError(`.env line ${line}: unexpected text after ${key}'s closing quote`);
      i += tail[0].length;
    } else {
      const nl = src.indexOf("\n", i);
      const raw = src.slice(i, nl === -1 ? src.length : nl);
      i += raw.length;
      value = interpolate(raw.replace(/[ \t]+#.*$/, "").trimEnd());
    }
    out[key] = value;
  }
  return out;
}

/** Replaces `${VAR}` (not `${MODULES…}`) with values from `env`; an unset variable is an error naming it. */
export function expandEnv(text: string, env: Record<string, string | undefined>, where = "template"): string {
  return text.replace(/\$\{(?!MODULES[.}])(?!MODULEDIR<)([A-Za-z_][A-Za-z0-9_]*)\}/g, (_m, name: string) => {
    const value = env[name];
    if (value === undefined) {
      throw new GenConfigError(`\${${name}} in ${where} is not set (environment, .env or .env.example)`);
    }
    return value;
  });
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
      const file = join(modulesPath, name, "module.json");
      const json = JSON.parse(expandEnv(readFileSync(join(dir, name, "module.json"), "utf8"), env, file)) as {
        image: { repository: string; tag: { version: string; platforms: Record<string, string> } };
      };
      return {
        name,
        // iotedgedev lower-cases the repository (an image reference must be lower case).
        repository: json.image.repository.toLowerCase(),
        version: json.image.tag.version,
        platforms: Object.keys(json.image.tag.platforms),
      };
    });
}

/** The image tag iotedgedev builds for a module and platform: `<repo>:<version>[-<CONTAINER_TAG>]-<platform>`. */
export function imageFor(mod: ModuleInfo, platform: string, containerTag = ""): string {
  if (!mod.platforms.includes(platform)) {
    throw new GenConfigError(`module ${mod.name} has no platform '${platform}' in module.json`);
  }
  const tag = containerTag === "" ? "" : `-${containerTag}`;
  return `${mod.repository}:${mod.version}${tag}-${platform}`;
}

function expandModules(text: string, modules: ModuleInfo[], platform: string, containerTag: string): string {
  return text.replace(
    /\$\{MODULES\.([A-Za-z0-9_-]+)(?:\.([A-Za-z0-9.]+))?\}/g,
    (_m, name: string, variant?: string) => {
      const mod = modules.find((m) => m.name === name);
      if (!mod) throw new GenConfigError(`\${MODULES.${name}} names no module under modules/`);
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
    throw new GenConfigError(
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
  opts: {
    platform: string;
    env: Record<string, string | undefined>;
    modules: ModuleInfo[];
    templateName?: string;
  },
): Json {
  const expanded = expandModules(
    expandEnv(templateText, opts.env, opts.templateName),
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

/**
 * Loads the dotenv file under the process environment, which wins (python-dotenv's
 * `load_dotenv` does not override). The file is `DOTENV_FILE` (as iotedgedev, relative to the
 * working root), else `.env`, else `.env.example` so a fresh clone generates manifests.
 */
export function loadEnv(
  root: string,
  processEnv: Record<string, string | undefined> = process.env,
): Record<string, string | undefined> {
  const named = processEnv.DOTENV_FILE?.trim().replace(/^["']|["']$/g, "");
  if (named) {
    const path = join(root, named);
    if (!existsSync(path)) throw new GenConfigError(`DOTENV_FILE ${named} does not exist`);
    return { ...parseDotEnv(readFileSync(path, "utf8"), processEnv), ...processEnv };
  }
  const file = existsSync(join(root, ".env")) ? join(root, ".env") : join(root, ".env.example");
  const fromFile = existsSync(file) ? parseDotEnv(readFileSync(file, "utf8"), processEnv) : {};
  return { ...fromFile, ...processEnv };
}

/** Generates every manifest; returns the written paths (repo-relative). */
export function generateAll(
  root: string,
  outDir?: string,
  processEnv: Record<string, string | undefined> = process.env,
): string[] {
  const env = loadEnv(root, processEnv);
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
      const manifest = generateDeployment(text, { platform, env, modules, templateName: template });
      // iotedgedev writes DEPLOYMENT_CONFIG_FILE, when set, for the default template and platform.
      const named = !debug && platform === (env.DEFAULT_PLATFORM || "amd64") && env.DEPLOYMENT_CONFIG_FILE;
      const file = join(out, named || `${prefix}.${platform}.json`);
      writeFileSync(file, `${JSON.stringify(manifest, null, 2)}\n`);
      written.push(file);
    }
  }
  // The layered ring deployment example, per platform (its module entry is a full definition).
  const layered = join(root, LAYERED_EXAMPLE);
  if (existsSync(layered)) {
    const text = readFileSync(layered, "utf8");
    for (const platform of platforms) {
      const doc = JSON.parse(
        expandModules(expandEnv(text, env, LAYERED_EXAMPLE), modules, platform, env.CONTAINER_TAG ?? ""),
      ) as Json;
      delete doc._comment;
      const agent = ((doc.content as Json).modulesContent as Json).$edgeAgent as Json;
      for (const [key, mod] of Object.entries(agent)) {
        if (key.startsWith("properties.desired.modules.") && (mod as Json).settings)
          splitCreateOptions((mod as Json).settings as Json);
      }
      const file = join(out, `layered-deployment.relay-listener.${platform}.json`);
      writeFileSync(file, `${JSON.stringify(doc, null, 2)}\n`);
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
  try {
    for (const file of generateAll(root)) console.log(`wrote ${file}`);
  } catch (err) {
    if (!(err instanceof GenConfigError)) throw err;
    console.error(`npm run manifests: ${err.message}`);
    process.exit(1);
  }
  console.log(`wrote ${join(root, TWIN_SCHEMA_PATH)}`);
}
