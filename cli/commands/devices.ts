/** `relay-fleet devices …`: the edge devices of a site (a redundant site has several). */
import type { Command } from "commander";
import { table } from "../format.ts";
import { print, type StatusRow, withClient } from "./shared.ts";

export function registerDeviceCommands(program: Command): void {
  const devices = program
    .command("devices")
    .description(
      "The edge devices of a site: a redundant site has several, each its own module identity and twin",
    );
  devices
    .command("add <siteId> [deviceId]")
    .description(
      "Join a device to a site (default id: <siteId>.<n>); it gets the site's module twin and tags, so the fleet's deployment puts the module on it",
    )
    .action((id: string, deviceId: string | undefined) =>
      withClient(async (c) => print(await c.addDevice(id, deviceId))),
    );
  devices
    .command("list <siteId>")
    .description("A site's devices with each module's reported state")
    .option("--json", "JSON output")
    .action((id: string, o: { json?: boolean }) =>
      withClient(async (c) => {
        const answer = (await c.listDevices(id)) as {
          devices: Array<{ deviceId: string; module?: StatusRow }>;
        };
        if (o.json) return print(answer.devices);
        console.log(
          table(
            ["DEVICE", "LISTENER", "APPLIED", "ACTIVE", "DRIFT"],
            answer.devices.map((d) => [
              { text: d.deviceId },
              { text: d.module?.listenerStatus ?? "no module twin" },
              { text: d.module?.appliedVersion !== undefined ? `v${d.module.appliedVersion}` : "-" },
              { text: String(d.module?.activeConnections ?? 0) },
              { text: d.module?.drift.join("; ") || (d.module ? "none" : "-") },
            ]),
          ),
        );
      }),
    );
  devices
    .command("remove <siteId> <deviceId>")
    .description(
      "Take a device out of a site (not its last: remove the site): its module twin is cleaned and its module removed",
    )
    .option("--delete-device", "also delete the IoT Edge device identity")
    .action((id: string, deviceId: string, o: { deleteDevice?: boolean }) =>
      withClient(async (c) => print(await c.removeDevice(id, deviceId, Boolean(o.deleteDevice)))),
    );
}
