/** `relay-fleet map …`: add, change, replace or remove a site's port mappings. */
import type { Command } from "commander";
import { mappingSpecSchema } from "../../cloud/functions/src/rollout/schemas.ts";
import { ROUTE_LIMIT_DEFAULTS } from "../../lib/ledger/route-limits.ts";
import { EXIT_USAGE, int, logicalPortName, mappingName, print, withClient } from "./shared.ts";

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

export function registerMapCommands(program: Command): void {
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
        logicalPortName,
      );
  /** `<siteId> <name>`, the name checked as a mapping name before any request. */
  const siteAndName = (cmd: Command) =>
    cmd
      .argument("<siteId>", "the site")
      .argument("<name>", "mapping name: 1-64 of A-Z a-z 0-9 _ -", mappingName);
  withMappingOptions(
    siteAndName(map.command("add"))
      .argument("<target>", "on-prem host:port")
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
    siteAndName(map.command("update"))
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
    siteAndName(map.command("replace"))
      .argument("<target>", "on-prem host:port")
      .description("Replace a mapping whole: options left out return to their defaults")
      .option("--disabled", "make it disabled"),
  ).action((id: string, name: string, target: string, o: MappingOptions) =>
    withClient(async (c) => print(await c.replaceMapping(id, name, mappingBody(target, o)))),
  );
  siteAndName(map.command("remove"))
    .description("Remove a mapping and free its public port")
    .action((id: string, name: string) => withClient(async (c) => print(await c.deleteMapping(id, name))));
}
