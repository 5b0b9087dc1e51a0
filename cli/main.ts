/**
 * `relay-fleet`: the operator CLI. Thin commands over {@link FleetClient}; every failure is one
 * sentence on stderr and a non-zero exit code.
 */
import { Command, InvalidArgumentError } from "commander";
import { errorMessage } from "../lib/errors.ts";
import { createFleetClient, type FleetClient } from "./client.ts";
import { discoverTarget } from "./discovery.ts";
import { paint, table, useColor } from "./format.ts";

interface StatusRow {
  siteId: string;
  listenerOnline: boolean;
  listenerStatus: string;
  mappings: number;
  activeConnections: number;
  lastError?: string;
  drift: string[];
}

function int(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError("must be a non-negative integer");
  return n;
}

async function withClient<T>(fn: (c: FleetClient) => Promise<T>): Promise<T> {
  const client = await createFleetClient(discoverTarget());
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

const print = (value: unknown) => console.log(JSON.stringify(value, null, 2));

export function buildProgram(): Command {
  const program = new Command("relay-fleet")
    .description(
      "Sites, port mappings and fleet status of a Relay Fleet, against Azure or the local simulation.",
    )
    .showHelpAfterError(false)
    .exitOverride();
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
    .option("--json", "JSON output")
    .action((o: { json?: boolean }) =>
      withClient(async (c) => {
        const { sites: list } = await c.listSites();
        if (o.json) return print(list);
        const rows = (
          list as Array<{ siteId: string; deviceId: string; publicPorts: number[]; mappings: object }>
        ).map((s) => [
          { text: s.siteId },
          { text: s.deviceId },
          { text: Object.keys(s.mappings).join(",") },
          { text: s.publicPorts.join(",") },
        ]);
        console.log(table(["SITE", "DEVICE", "MAPPINGS", "PUBLIC PORTS"], rows));
      }),
    );
  sites.command("show <siteId>").action((id: string) => withClient(async (c) => print(await c.getSite(id))));
  sites
    .command("remove <siteId>")
    .option("--delete-device", "also delete the IoT Edge device identity")
    .action((id: string, o: { deleteDevice?: boolean }) =>
      withClient(async (c) => print(await c.removeSite(id, Boolean(o.deleteDevice)))),
    );

  const map = program.command("map").description("Add, change or remove a site's port mappings");
  map
    .command("add <siteId> <name> <target>")
    .description("Add or change a mapping: logical port name → on-prem host:port")
    .option("--disabled", "create it disabled")
    .option("--max-connections <n>", "concurrent connection limit", int)
    .option("--port <n>", "a specific public port (default: next free)", int)
    .option("--allow <cidr...>", "source CIDRs allowed at the gateway")
    .action(
      (
        id: string,
        name: string,
        target: string,
        o: { disabled?: boolean; maxConnections?: number; port?: number; allow?: string[] },
      ) =>
        withClient(async (c) =>
          print(
            await c.putMapping(id, name, {
              target,
              ...(o.disabled ? { enabled: false } : {}),
              ...(o.maxConnections !== undefined ? { maxConnections: o.maxConnections } : {}),
              ...(o.port !== undefined ? { public: { kind: "tcp", port: o.port } } : {}),
              ...(o.allow ? { allowCidrs: o.allow } : {}),
            }),
          ),
        ),
    );
  map
    .command("remove <siteId> <name>")
    .action((id: string, name: string) => withClient(async (c) => print(await c.deleteMapping(id, name))));

  program
    .command("rotate-keys <siteId>")
    .description("Rotate a site's Listen and Send keys without dropping connections")
    .action((id: string) => withClient(async (c) => print(await c.rotateKeys(id))));

  program
    .command("status")
    .description("Fleet table from the module twins (one IoT Hub query)")
    .option("--json", "JSON output")
    .action((o: { json?: boolean }) =>
      withClient(async (c) => {
        const rows = (await c.status()).sites as StatusRow[];
        if (o.json) return print(rows);
        const color = useColor();
        console.log(
          table(
            ["SITE", "LISTENER", "MAPPINGS", "ACTIVE", "LAST ERROR", "DRIFT"],
            rows.map((r) => [
              { text: r.siteId },
              {
                text: r.listenerStatus,
                styled: paint(color, r.listenerOnline ? "green" : "red", r.listenerStatus),
              },
              { text: String(r.mappings) },
              { text: String(r.activeConnections) },
              {
                text: r.lastError ?? "-",
                ...(r.lastError ? { styled: paint(color, "yellow", r.lastError) } : {}),
              },
              {
                text: r.drift.join("; ") || "none",
                ...(r.drift.length ? { styled: paint(color, "yellow", r.drift.join("; ")) } : {}),
              },
            ]),
          ),
        );
      }),
    );
  return program;
}

/** Runs the CLI; resolves with the exit code. */
export async function runCli(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: "user" });
    return 0;
  } catch (err) {
    const code = (err as { code?: unknown; exitCode?: unknown }).code;
    if (typeof code === "string" && code.startsWith("commander.")) {
      const exit = (err as { exitCode?: number }).exitCode ?? 1;
      return code === "commander.helpDisplayed" || code === "commander.version" ? 0 : exit;
    }
    console.error(`relay-fleet: ${errorMessage(err)}`);
    return 1;
  }
}

if (import.meta.url === `file://${process.argv[1]}` || process.env.RELAY_FLEET_CLI_MAIN === "1") {
  runCli(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
