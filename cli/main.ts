/**
 * `relay-fleet`: the operator CLI. Thin commands over {@link FleetClient}; every failure is one
 * sentence on stderr and a non-zero exit code.
 *
 * Conventions (tested in test/unit/cli-conventions.test.ts):
 * - exit 0 on success, 2 when the command line cannot be parsed (usage), 1 for anything that
 *   fails while running (unreachable API, a site that does not exist, a rejected value);
 * - with `--json` anywhere on the command line, an error is one JSON line on stderr,
 *   `{"error":{"code":"RF_ERR_…","message":"…"}}`, so scripts match on the code;
 * - `--version` prints the package version; every command has a description.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Command, CommanderError, InvalidArgumentError } from "commander";
import { mappingSpecSchema } from "../cloud/functions/src/rollout/schemas.ts";
import type { AuditRecord } from "../lib/audit/index.ts";
import { parseSince, SINCE_RULE } from "../lib/audit/since.ts";
import { iothubServiceClientsFromEnv } from "../lib/azure/iothub-service.ts";
import { errorMessage } from "../lib/errors.ts";
import { ROUTE_LIMIT_DEFAULTS } from "../lib/ledger/route-limits.ts";
import { redactSecrets } from "../lib/log.ts";
import { createFleetClient, type FleetClient } from "./client.ts";
import { applyFleetDeployments, buildFleetDeployments } from "./deployment.ts";
import { discoverTarget } from "./discovery.ts";
import { paint, table, useColor } from "./format.ts";

interface GatewayRow {
  instanceId: string;
  updatedAt: string;
  stale: boolean;
  ready: boolean;
  listening: number;
  unbound: Array<{ port: number; error: string }>;
}

interface StatusRow {
  siteId: string;
  deviceId: string;
  appliedVersion?: number;
  listenerOnline: boolean;
  listenerStatus: string;
  mappings: number;
  activeConnections: number;
  lastError?: string;
  /** The module on the device per its edge agent (runtime status), and the image it runs. */
  deployment?: string;
  image?: string;
  drift: string[];
}

/** `running 0.1.0-amd64`: the runtime status and the image tag the device's deployment runs. */
function deploymentText(r: StatusRow): string {
  const tag = r.image?.split("/").pop()?.split(":")[1];
  return `${r.deployment ?? "-"}${tag ? ` ${tag}` : ""}`;
}

function int(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError("must be a non-negative integer");
  return n;
}

function since(value: string): string {
  const at = parseSince(value);
  if (!at) throw new InvalidArgumentError(`must be ${SINCE_RULE}`);
  return at.toISOString();
}

function limit(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 1000)
    throw new InvalidArgumentError("must be an integer from 1 to 1000");
  return n;
}

function duration(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
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

/** Exit codes: usage errors are the command line's fault, runtime errors are not. */
export const EXIT_RUNTIME = 1;
export const EXIT_USAGE = 2;

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
    version?: unknown;
  };
  return typeof pkg.version === "string" ? pkg.version : "0.0.0";
}

/** True when the user asked for JSON output (an error then goes out as JSON too). */
export function wantsJson(argv: string[]): boolean {
  const end = argv.indexOf("--");
  return (end === -1 ? argv : argv.slice(0, end)).includes("--json");
}

interface MappingOptions {
  disabled?: boolean;
  maxConnections?: number;
  maxPerSource?: number;
  port?: number;
  allow?: string[];
  portName?: string;
}

interface UpdateOptions {
  target?: string;
  enable?: boolean;
  disable?: boolean;
  allowAny?: boolean;
}

/** A whole mapping (add, replace): what is not given takes the API's defaults. */
function mappingBody(target: string, o: MappingOptions): Record<string, unknown> {
  return {
    target,
    ...(o.disabled ? { enabled: false } : {}),
    ...(o.maxConnections !== undefined ? { maxConnections: o.maxConnections } : {}),
    ...(o.maxPerSource !== undefined ? { maxConnectionsPerSource: o.maxPerSource } : {}),
    ...(o.port !== undefined ? { public: { kind: "tcp", port: o.port } } : {}),
    ...(o.allow ? { allowCidrs: o.allow } : {}),
    ...(o.portName !== undefined ? { portName: o.portName } : {}),
  };
}

/** Only the fields named on the command line (update). */
function updateBody(
  o: MappingOptions & UpdateOptions,
  usage: (message: string) => never,
): Record<string, unknown> {
  if (o.enable && o.disable) usage("--enable and --disable exclude each other");
  if (o.allow && o.allowAny) usage("--allow and --allow-any exclude each other");
  const body: Record<string, unknown> = {
    ...(o.target !== undefined ? { target: o.target } : {}),
    ...(o.enable ? { enabled: true } : {}),
    ...(o.disable ? { enabled: false } : {}),
    ...(o.maxConnections !== undefined ? { maxConnections: o.maxConnections } : {}),
    ...(o.maxPerSource !== undefined ? { maxConnectionsPerSource: o.maxPerSource } : {}),
    ...(o.port !== undefined ? { public: { kind: "tcp", port: o.port } } : {}),
    ...(o.allow ? { allowCidrs: o.allow } : {}),
    ...(o.allowAny ? { allowCidrs: [] } : {}),
    ...(o.portName !== undefined ? { portName: o.portName } : {}),
  };
  if (Object.keys(body).length === 0) usage("name at least one field to change (see --help)");
  return body;
}

export function buildProgram(options: { json?: boolean } = {}): Command {
  const program = new Command("relay-fleet")
    .description(
      "Sites, port mappings and fleet status of a Relay Fleet, against Azure or the local simulation.",
    )
    .version(packageVersion(), "-V, --version", "print the version and exit")
    .showHelpAfterError(false)
    .exitOverride();
  // Subcommands inherit this; under --json runCli prints the error itself, as JSON.
  if (options.json) program.configureOutput({ outputError: () => {} });
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

  const map = program.command("map").description("Add, change or remove a site's port mappings");
  const withMappingOptions = (cmd: Command) =>
    cmd
      .option(
        "--max-connections <n>",
        `concurrent connections of the mapping (default ${mappingSpecSchema.shape.maxConnections.parse(undefined)}; 0 = unlimited)`,
        int,
      )
      .option(
        "--max-per-source <n>",
        `concurrent connections one client address may hold at the gateway (default ${ROUTE_LIMIT_DEFAULTS.maxConnectionsPerSource}; 0 = no per-address cap)`,
        int,
      )
      .option("--port <n>", "a specific public port (default: next free)", int)
      .option("--allow <cidr...>", "source CIDRs allowed at the gateway")
      .option(
        "--port-name <name>",
        "logical port senders ask for, for azbridge clients (letters, digits, / _ - .; default: the mapping name)",
      );
  withMappingOptions(
    map
      .command("add <siteId> <name> <target>")
      .description(
        "Add a mapping: mapping name → on-prem host:port (fails if the name exists; see update, replace)",
      )
      .option("--disabled", "create it disabled")
      .addHelpText(
        "after",
        `
The target is reached by the site's relayListener module, so it must be on the site's local
allowlist (the device owner's allowlist file). In the local simulation (npm start) that is
127.0.0.1/32:* — a service of your own on this machine:
  relay-fleet map add plant-1 mine 127.0.0.1:8000
The answer shows the site with its mappings: the new mapping's publicPort is the port to use on
the gateway (the simulation also lists it in its live port table).`,
      ),
  ).action((id: string, name: string, target: string, o: MappingOptions) =>
    withClient(async (c) => print(await c.addMapping(id, name, mappingBody(target, o)))),
  );
  withMappingOptions(
    map
      .command("update <siteId> <name>")
      .description("Change only the given fields of a mapping; every other field keeps its value")
      .option("--target <host:port>", "new on-prem target")
      .option("--enable", "enable it")
      .option("--disable", "disable it (live connections drain)")
      .option("--allow-any", "drop the source CIDR restriction"),
  ).action((id: string, name: string, o: MappingOptions & UpdateOptions, cmd: Command) => {
    // A usage error like commander's own: printed by commander, exit code 2.
    const body = updateBody(o, (message) => cmd.error(`error: ${message}`, { exitCode: EXIT_USAGE }));
    return withClient(async (c) => print(await c.updateMapping(id, name, body)));
  });
  withMappingOptions(
    map
      .command("replace <siteId> <name> <target>")
      .description("Replace a mapping whole: options left out return to their defaults")
      .option("--disabled", "make it disabled"),
  ).action((id: string, name: string, target: string, o: MappingOptions) =>
    withClient(async (c) => print(await c.replaceMapping(id, name, mappingBody(target, o)))),
  );
  map
    .command("remove <siteId> <name>")
    .description("Remove a mapping and free its public port")
    .action((id: string, name: string) => withClient(async (c) => print(await c.deleteMapping(id, name))));

  program
    .command("rotate-keys <siteId>")
    .description(
      "Rotate a site's keys: a new hybrid connection with new Listen and Send keys; the old one (and any listener on an old key) is deleted",
    )
    .action((id: string) => withClient(async (c) => print(await c.rotateKeys(id))));

  const deployment = program
    .command("deployment")
    .description("The fleet's base IoT Edge deployment (edgeAgent, edgeHub, relayListener) in IoT Hub");
  deployment
    .command("apply")
    .description(
      "Create the base at-scale deployment (deployment.template.json) for every onboarded device and the retired one for offboarded devices (IOTHUB_CONNECTION_STRING)",
    )
    .option("--platform <platform>", "module image platform (module.json)", "amd64")
    .option("--dry-run", "print the deployment instead of creating it")
    .option("--keep-old", "leave older base deployments in place")
    .action(async (o: { platform: string; dryRun?: boolean; keepOld?: boolean }) => {
      const root = fileURLToPath(new URL("..", import.meta.url));
      const built = buildFleetDeployments(root, o.platform);
      // The registry password from .env must not land in a terminal or a CI log.
      if (o.dryRun)
        return print(
          JSON.parse(redactSecrets(JSON.stringify(built)).replace(/("password":)"[^"]*"/g, '$1"[REDACTED]"')),
        );
      const { registry } = iothubServiceClientsFromEnv();
      print(await applyFleetDeployments(registry, built, { keepOld: o.keepOld === true }));
    });

  program
    .command("status")
    .description(
      "Fleet table from the module twins and each device's edge agent (its deployment's state; two IoT Hub queries): a row per device of each site",
    )
    .option("--json", "JSON output")
    .action((o: { json?: boolean }) =>
      withClient(async (c) => {
        const status = await c.status();
        const rows = status.sites as StatusRow[];
        // --json stays the array of sites (a port a gateway cannot bind is in its site's drift).
        if (o.json) return print(rows);
        const color = useColor();
        console.log(
          table(
            ["SITE", "DEVICE", "DEPLOYMENT", "LISTENER", "MAPPINGS", "ACTIVE", "LAST ERROR", "DRIFT"],
            rows.map((r) => [
              { text: r.siteId },
              { text: r.deviceId },
              {
                text: deploymentText(r),
                styled: paint(color, r.deployment === "running" ? "green" : "yellow", deploymentText(r)),
              },
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
        const gateways = (status.gateways ?? []) as GatewayRow[];
        if (gateways.some((g) => g.stale || g.unbound.length > 0 || !g.ready)) {
          console.log("");
          console.log(
            table(
              ["GATEWAY", "STATE", "LISTENING", "NOT LISTENING"],
              gateways.map((g) => {
                const state = g.stale ? `not seen since ${g.updatedAt}` : g.ready ? "ready" : "not ready";
                const unbound = g.unbound.map((u) => `${u.port}: ${u.error}`).join("; ") || "-";
                return [
                  { text: g.instanceId },
                  { text: state, styled: paint(color, g.stale || !g.ready ? "red" : "green", state) },
                  { text: String(g.listening) },
                  { text: unbound, ...(g.unbound.length ? { styled: paint(color, "red", unbound) } : {}) },
                ];
              }),
            ),
          );
        }
      }),
    );
  program
    .command("audit")
    .description(
      "Tunnels' audit records, newest first: who reached which site and mapping, from where, bytes, duration and how each ended",
    )
    .option("--site <siteId>", "only this site's tunnels")
    .option(
      "--since <time>",
      "only tunnels that ended since: an ISO time, or a span back such as 15m, 2h, 7d",
      since,
    )
    .option("--limit <n>", "at most this many records (default 200, at most 1000)", limit)
    .option("--json", "JSON output (the array of records)")
    .addHelpText(
      "after",
      `
Each tunnel has a record from each end: SIDE gateway (the public port, the client's address as
the gateway saw it) and SIDE module (the on-prem target; the client from PROXY v2 where enabled).
In the simulation the modules' records come from the IoT Hub emulator's kept messages and the
gateways' from their logs; in Azure they are in the hub's storage route and the gateways'
container logs, and the rollout service answers 501 (docs/audit.md).`,
    )
    .action((o: { site?: string; since?: string; limit?: number; json?: boolean }) =>
      withClient(async (c) => {
        const answer = await c.audit({
          ...(o.site !== undefined ? { site: o.site } : {}),
          ...(o.since !== undefined ? { since: o.since } : {}),
          ...(o.limit !== undefined ? { limit: o.limit } : {}),
        });
        // A source that could not be read is said on stderr, so it never passes as "no records".
        for (const s of answer.sources) {
          if (!s.ok)
            console.error(`relay-fleet: warning: audit source ${s.name} could not be read: ${s.error}`);
          else if (s.dropped)
            console.error(`relay-fleet: warning: ${s.name} dropped ${s.dropped} record(s) under load`);
        }
        const records = answer.records as AuditRecord[];
        if (o.json) return print(records);
        if (records.length === 0) {
          console.log("No audit records.");
          return;
        }
        const color = useColor();
        console.log(
          table(
            [
              "TIME",
              "SIDE",
              "SITE",
              "DEVICE",
              "MAPPING",
              "CLIENT",
              "PUBLIC / TARGET",
              "IN",
              "OUT",
              "DURATION",
              "END",
            ],
            records.map((r) => {
              const end = r.reason ? `${r.end} (${r.reason})` : r.end;
              const where =
                r.side === "gateway"
                  ? r.publicPort === undefined
                    ? "-"
                    : `${r.publicHost ? `${r.publicHost}:` : "port "}${r.publicPort}`
                  : (r.target ?? "-");
              return [
                { text: r.time },
                { text: r.side },
                { text: r.site ?? "-" },
                { text: r.device ?? "-" },
                { text: r.mapping },
                { text: r.client ?? "-" },
                { text: where },
                { text: String(r.bytesIn) },
                { text: String(r.bytesOut) },
                { text: duration(r.durationMs) },
                {
                  text: end,
                  ...(r.end === "completed"
                    ? {}
                    : { styled: paint(color, r.end === "refused" ? "red" : "yellow", end) }),
                },
              ];
            }),
          ),
        );
      }),
    );
  acceptJsonEverywhere(program);
  return program;
}

/** Every leaf command takes --json, so `--json` can always be given to get errors as JSON. */
function acceptJsonEverywhere(command: Command): void {
  for (const sub of command.commands) {
    const leaf = sub.commands.length === 0;
    if (leaf && !sub.options.some((o) => o.long === "--json")) sub.option("--json", "JSON errors");
    acceptJsonEverywhere(sub);
  }
}

function reportError(json: boolean, code: string, message: string): void {
  if (json) console.error(JSON.stringify({ error: { code, message } }));
  else console.error(`relay-fleet: ${message}`);
}

/** Runs the CLI; resolves with the exit code. */
export async function runCli(argv: string[]): Promise<number> {
  const json = wantsJson(argv);
  const program = buildProgram({ json });
  try {
    await program.parseAsync(argv, { from: "user" });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (["commander.helpDisplayed", "commander.version", "commander.help"].includes(err.code)) {
        // `commander.help` with exit code 1 is help shown because a subcommand was missing.
        return err.exitCode === 0 ? 0 : EXIT_USAGE;
      }
      // Commander already printed its message unless under --json.
      if (json) reportError(true, "RF_ERR_CLI_USAGE", err.message.replace(/^error: /, ""));
      return EXIT_USAGE;
    }
    const code = (err as { code?: unknown }).code;
    reportError(
      json,
      typeof code === "string" && code.startsWith("RF_ERR_") ? code : "RF_ERR_CLI_FAILED",
      errorMessage(err),
    );
    return EXIT_RUNTIME;
  }
}

if (import.meta.url === `file://${process.argv[1]}` || process.env.RELAY_FLEET_CLI_MAIN === "1") {
  runCli(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
