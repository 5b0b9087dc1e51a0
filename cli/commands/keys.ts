/** `relay-fleet rotate-keys`: a site's new hybrid connection with new keys (ADR 0009). */
import type { Command } from "commander";
import { print, withClient } from "./shared.ts";

export function registerKeyCommands(program: Command): void {
  program
    .command("rotate-keys <siteId>")
    .description(
      "Rotate a site's keys: a new hybrid connection with new Listen and Send keys; the old one (and any listener on an old key) is deleted",
    )
    .action((id: string) => withClient(async (c) => print(await c.rotateKeys(id))));
}
