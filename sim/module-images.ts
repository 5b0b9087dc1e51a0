/**
 * What an image of a deployment manifest is in the simulation: the repository's own module source.
 * A deployment names `<registry>/relaylistener:0.1.0-amd64`; iotedgedev builds that image from
 * `modules/relayListener` (module.json's `image.repository`), so the simulated edge agent runs
 * `modules/relayListener/src/main.ts` for it. The tag (version, platform) says which build of the
 * source the device should run; the simulation has only the checked-out one and runs it for any tag.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "./child-process.ts";

export interface ModuleImage {
  /** Module directory name (`relayListener`). */
  module: string;
  /** TypeScript entry point relative to the repository root. */
  script: string;
  /** The module's pino "ready" message (`relayListener ready`): the process is up once it is logged. */
  isReady(line: Record<string, unknown>): boolean;
}

/** `host:5000/team/relaylistener:0.1.0-amd64` → `relaylistener` (the repository's last segment). */
export function imageName(image: string): string {
  const withoutDigest = image.split("@")[0] ?? image;
  const lastSlash = withoutDigest.lastIndexOf("/");
  const nameAndTag = withoutDigest.slice(lastSlash + 1);
  return (nameAndTag.split(":")[0] ?? nameAndTag).toLowerCase();
}

/** The repository's modules by image name, read once from modules/<dir>/module.json. */
export function moduleImages(root = REPO_ROOT): (image: string) => ModuleImage | undefined {
  const byName = new Map<string, ModuleImage>();
  const modulesDir = join(root, "modules");
  for (const dir of existsSync(modulesDir) ? readdirSync(modulesDir) : []) {
    const manifest = join(modulesDir, dir, "module.json");
    const script = `modules/${dir}/src/main.ts`;
    if (!existsSync(manifest) || !existsSync(join(root, script))) continue;
    const repository = (JSON.parse(readFileSync(manifest, "utf8")) as { image?: { repository?: unknown } })
      .image?.repository;
    if (typeof repository !== "string") continue;
    const ready = `${dir} ready`;
    byName.set(imageName(repository), { module: dir, script, isReady: (line) => line.msg === ready });
  }
  return (image) => byName.get(imageName(image));
}
