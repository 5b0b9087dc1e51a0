/** `relay-fleet sites …`: onboard, list, show and remove sites. */
import type { Command } from "commander";
import { table } from "../format.ts";
import { print, withClient } from "./shared.ts";

export function registerSiteCommands(program: Command): void {
  const sites = program.command("sites").description("Onboard, list, show and remove sites");
  sites
    .command("add <siteId>")
    .description("Onboard a site with a profile's mappings (or none)")
    .option("--device <deviceId>", "IoT Edge device id (default: the site id)")
    .option("--profile <name>", "site profile with default mappings")
    .action((siteId: string, o: { device?: string; profile?: string }) =>
      withClient(async (c) =>
        print(
          await c.createSite({
            siteId,
            ...(o.device ? { deviceId: o.device } : {}),
            ...(o.profile ? { profile: o.profile } : {}),
          }),
        ),
      ),
    );
  sites
    .command("list")
    .description("All sites with their devices, mappings and public ports")
    .option("--json", "JSON output")
    .action((o: { json?: boolean }) =>
      withClient(async (c) => {
        const { sites: list } = await c.listSites();
        if (o.json) return print(list);
        const rows = (
          list as Array<{
            siteId: string;
            devices: Array<{ deviceId: string }>;
            publicPorts: number[];
            mappings: object;
          }>
        ).map((s) => [
          { text: s.siteId },
          { text: s.devices.map((d) => d.deviceId).join(",") },
          { text: Object.keys(s.mappings).join(",") },
          { text: s.publicPorts.join(",") },
        ]);
        console.log(table(["SITE", "DEVICES", "MAPPINGS", "PUBLIC PORTS"], rows));
      }),
    );
  sites
    .command("show <siteId>")
    .description("One site: its device, mappings, public ports and keys' rule names")
    .action((id: string) => withClient(async (c) => print(await c.getSite(id))));
  sites
    .command("remove <siteId>")
    .description("Offboard a site: free its ports, delete its hybrid connections and module twin settings")
    .option("--delete-device", "also delete the IoT Edge device identity")
    .action((id: string, o: { deleteDevice?: boolean }) =>
      withClient(async (c) => print(await c.removeSite(id, Boolean(o.deleteDevice)))),
    );
}
