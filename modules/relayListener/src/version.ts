/** The module's version: `MODULE_VERSION` (set by the image build, read in settings.ts) or the package version. */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export function moduleVersion(fromBuild: string | undefined): string {
  if (fromBuild) return fromBuild;
  // Walk up: the sources run from modules/relayListener/src, the image from dist/… below it.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const file = join(dir, "package.json");
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, "utf8")) as { version?: unknown };
      if (typeof pkg.version === "string") return pkg.version;
    }
    dir = dirname(dir);
  }
  return "0.0.0";
}
