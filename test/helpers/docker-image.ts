/**
 * No Docker engine runs here, so an image is checked by assembling its runtime file set exactly
 * as its Dockerfile says: the build context filtered by `.dockerignore`, each stage's WORKDIR,
 * COPY (from the context or `--from=<stage>`) and RUN steps, then the final stage's folder is
 * what the image holds above its base (its application layer). RUN supports what the
 * Dockerfiles use: `npm ci` (linked to this checkout's node_modules, which `npm ci` of the same
 * lockfile produced; no network) and `npm run <script>` (run for real in the stage's folder).
 * Any other instruction fails the assembly, so a Dockerfile cannot outgrow this check silently.
 */
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync } from "node:fs";
import { dirname, join, posix, relative } from "node:path";

export interface AssembledImage {
  /** The final stage's WORKDIR content: the application layer. */
  appDir: string;
  /** CMD of the final stage (exec form). */
  cmd: string[];
  /** ENV of the final stage. */
  env: Record<string, string>;
  /** Bytes of every regular file in the application layer. */
  appBytes: number;
}

interface Stage {
  name: string | undefined;
  /** Root of the stage's file system (only what COPY and RUN put there). */
  root: string;
  workdir: string;
  env: Record<string, string>;
  cmd: string[];
}

/** `.dockerignore` as Docker reads it: globs, `**`, `!` re-includes, the last matching line wins. */
export function dockerIgnoreFilter(text: string): (relPath: string) => boolean {
  const rules = text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"))
    .map((l) => {
      const negate = l.startsWith("!");
      const glob = posix.normalize((negate ? l.slice(1) : l).replace(/^\//, ""));
      const re = glob
        .split("/")
        .map((seg) =>
          seg === "**"
            ? "(?:.*)"
            : seg
                .replace(/[.+^${}()|[\]\\]/g, "\\$&")
                .replace(/\*/g, "[^/]*")
                .replace(/\?/g, "[^/]"),
        )
        .join("/")
        .replace(/\(\?:\.\*\)\//g, "(?:.*/)?");
      return { negate, re: new RegExp(`^${re}(?:/.*)?$`) };
    });
  return (relPath) => {
    let excluded = false;
    for (const r of rules) if (r.re.test(relPath)) excluded = !r.negate;
    return !excluded;
  };
}

/** Splits a Dockerfile into instructions (continuations joined, comments dropped). */
function instructions(text: string): Array<{ op: string; args: string }> {
  const joined = text.replace(/\\\n/g, " ");
  return joined
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"))
    .map((l) => {
      const m = /^(\S+)\s*(.*)$/.exec(l)!;
      return { op: m[1]!.toUpperCase(), args: m[2]! };
    });
}

function copyFiltered(
  src: string,
  dest: string,
  context: string,
  included: (rel: string) => boolean,
): number {
  let copied = 0;
  const rel = relative(context, src);
  const st = statSync(src);
  if (st.isDirectory()) {
    for (const entry of readdirSync(src)) {
      copied += copyFiltered(join(src, entry), join(dest, entry), context, included);
    }
    return copied;
  }
  if (!included(rel)) return 0;
  mkdirSync(dirname(dest), { recursive: true });
  cpSync(src, dest);
  return 1;
}

function dirBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) total += dirBytes(p);
    else if (entry.isFile()) total += statSync(p).size;
  }
  return total;
}

/**
 * Assembles `dockerfile` (repository-relative) with `context` as the build context into
 * `workRoot` (a temp dir the caller removes); returns the final stage.
 */
export function assembleImage(opts: {
  context: string;
  dockerfile: string;
  workRoot: string;
}): AssembledImage {
  const { context, workRoot } = opts;
  const ignoreFile = join(context, ".dockerignore");
  const included = existsSync(ignoreFile) ? dockerIgnoreFilter(readFileSync(ignoreFile, "utf8")) : () => true;
  const stages: Stage[] = [];
  let stage: Stage | undefined;
  for (const { op, args } of instructions(readFileSync(join(context, opts.dockerfile), "utf8"))) {
    if (op === "FROM") {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      if (!m) throw new Error(`${opts.dockerfile}: cannot read FROM ${args}`);
      const root = join(workRoot, `stage${stages.length}`);
      mkdirSync(root, { recursive: true });
      stage = { name: m[2], root, workdir: "/", env: {}, cmd: [] };
      stages.push(stage);
      continue;
    }
    if (!stage) throw new Error(`${opts.dockerfile}: ${op} before FROM`);
    const here = join(stage.root, stage.workdir);
    switch (op) {
      case "WORKDIR":
        stage.workdir = posix.resolve(stage.workdir, args);
        mkdirSync(join(stage.root, stage.workdir), { recursive: true });
        break;
      case "ENV": {
        for (const m of args.matchAll(/(\w+)=("[^"]*"|\S+)/g)) stage.env[m[1]!] = m[2]!.replace(/^"|"$/g, "");
        break;
      }
      case "COPY": {
        const words = args.split(/\s+/);
        const from = words.find((w) => w.startsWith("--from="))?.slice("--from=".length);
        const paths = words.filter((w) => !w.startsWith("--"));
        const dest = paths.pop()!;
        const destPath = join(stage.root, posix.resolve(stage.workdir, dest));
        for (const src of paths) {
          if (from) {
            const s = stages.find((x) => x.name === from);
            if (!s) throw new Error(`${opts.dockerfile}: COPY --from=${from}: no such stage`);
            const srcPath = join(s.root, posix.resolve(s.workdir, src));
            if (!existsSync(srcPath))
              throw new Error(`${opts.dockerfile}: COPY --from=${from} ${src}: not built`);
            cpSync(
              srcPath,
              statSync(srcPath).isDirectory() ? destPath : join(destPath, posix.basename(src)),
              {
                recursive: true,
                dereference: true,
              },
            );
          } else {
            const srcPath = join(context, src);
            if (!existsSync(srcPath)) throw new Error(`${opts.dockerfile}: COPY ${src}: not in the context`);
            // A folder's content goes into dest; a file goes to dest, or into it when dest ends in "/".
            const isDir = statSync(srcPath).isDirectory();
            const into =
              isDir || !(dest.endsWith("/") || paths.length > 1)
                ? destPath
                : join(destPath, posix.basename(src));
            const n = copyFiltered(srcPath, into, context, included);
            if (n === 0) throw new Error(`${opts.dockerfile}: COPY ${src}: excluded by .dockerignore`);
          }
        }
        break;
      }
      case "RUN": {
        for (const step of args.split("&&").map((s) => s.trim())) {
          if (/^npm ci\b/.test(step)) {
            if (!existsSync(join(here, "package-lock.json")))
              throw new Error(`${opts.dockerfile}: npm ci without a lockfile`);
            symlinkSync(join(context, "node_modules"), join(here, "node_modules"), "dir");
          } else if (/^npm run \S+/.test(step)) {
            const r = spawnSync("npm", step.split(/\s+/).slice(1), { cwd: here, encoding: "utf8" });
            if (r.status !== 0)
              throw new Error(`${opts.dockerfile}: RUN ${step} failed:\n${r.stdout}\n${r.stderr}`);
          } else if (!/^npm cache clean\b/.test(step)) {
            throw new Error(`${opts.dockerfile}: RUN ${step} is not supported by the assembly check`);
          }
        }
        break;
      }
      case "CMD":
        stage.cmd = JSON.parse(args) as string[];
        break;
      case "USER":
      case "STOPSIGNAL":
      case "EXPOSE":
      case "HEALTHCHECK":
      case "LABEL":
        break;
      default:
        throw new Error(`${opts.dockerfile}: ${op} is not supported by the assembly check`);
    }
  }
  if (!stage) throw new Error(`${opts.dockerfile}: no FROM`);
  const appDir = join(stage.root, stage.workdir);
  return { appDir, cmd: stage.cmd, env: stage.env, appBytes: dirBytes(appDir) };
}
