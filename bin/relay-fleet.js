#!/usr/bin/env node
// The package `bin`: runs the built CLI when present, else the TypeScript source through tsx
// (a dependency, so this works straight after `npm ci`).
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const built = join(root, "dist", "cli", "main.js");
let mod;
if (existsSync(built)) {
  mod = await import(pathToFileURL(built).href);
} else {
  const { register } = await import("tsx/esm/api");
  register();
  mod = await import(pathToFileURL(join(root, "cli", "main.ts")).href);
}
process.exitCode = await mod.runCli(process.argv.slice(2));
