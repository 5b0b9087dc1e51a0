/** `relay-fleet sites …`: onboard, list, show and remove sites. */
import type { Command } from "commander";
import { table } from "../format.ts";
import { addSitesFromFile, showJob } from "../sites-from-file.ts";
import { moveSiteCommand, namespacesCommand } from "../sites-move.ts";
import { EXIT_USAGE, print, withClient } from "./shared.ts";

export function registerSiteCommands(program: Command): void {
  const sites = program.command("sites").description("Onboard, list, show and remove sites");
  sites
    .command("add [siteId]")
    .description("Onboard a site with a profile's mappings (or none), or many from a CSV file")
    .option("--device <deviceId>", "IoT Edge device id (default: the site id)")
    .option("--profile <name>", "site profile with default mappings")
    .option(
      "--from-file <csv>",
      "onboard every site of a CSV file (columns siteId, deviceId, profile) as one job",
    )
    .option("--no-wait", "with --from-file: queue the job and print its id instead of following it")
    .action(
      (
        siteId: string | undefined,
        o: { device?: string; profile?: string; fromFile?: string; wait: boolean; json?: boolean },
        cmd: Command,
      ) => {
        if (o.fromFile !== undefined) {
          if (siteId !== undefined || o.device || o.profile)
            cmd.error("--from-file takes its sites, devices and profiles from the file", {
              exitCode: EXIT_USAGE,
            });
          const file = o.fromFile;
          return withClient((c) => addSitesFromFile(c, file, { wait: o.wait, json: o.json === true }));
        }
        if (siteId === undefined)
          cmd.error("missing required argument 'siteId' (or --from-file <csv>)", { exitCode: EXIT_USAGE });
        return withClient(async (c) =>
          print(
            await c.createSite({
              siteId,
              ...(o.device ? { deviceId: o.device } : {}),
              ...(o.profile ? { profile: o.profile } : {}),
            }),
          ),
        );
      },
    );
  sites
    .command("move <siteId>")
    .description("Move a site to another relay namespace, keeping its public ports (its keys are rotated)")
    .requiredOption(
      "--namespace <endpointOrName>",
      "the relay namespace: its endpoint (sb://…), host or name",
    )
    .option("--json", "JSON output")
    .action((siteId: string, o: { namespace: string; json?: boolean }) =>
      withClient((c) => moveSiteCommand(c, siteId, o.namespace, o.json === true)),
    );
  sites
    .command("namespaces")
    .description("Each relay namespace's sites and connections against its quota and fill limit")
    .option("--json", "JSON output")
    .action((o: { json?: boolean }) => withClient((c) => namespacesCommand(c, o.json === true)));
  sites
    .command("job <jobId>")
    .description("An onboarding job's progress: what succeeded, failed and is queued, and why")
    .option("--json", "JSON output")
    .action((jobId: string, o: { json?: boolean }) => withClient((c) => showJob(c, jobId, o.json === true)));
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
