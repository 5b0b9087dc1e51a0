/**
 * `relay-fleet`: the operator CLI. Thin commands over {@link FleetClient}, one file per command
 * group in cli/commands/; this file builds the program and runs it. Every failure is one sentence
 * on stderr and a non-zero exit code.
 *
 * Conventions (tested in test/unit/cli-conventions.test.ts):
 * - exit 0 on success, 2 when the command line cannot be parsed (usage), 1 for anything that
 *   fails while running (unreachable API, a site that does not exist, a rejected value);
 * - with `--json` anywhere on the command line, an error is one JSON line on stderr,
 *   `{"error":{"code":"RF_ERR_…","message":"…"}}`, so scripts match on the code;
 * - `--version` prints the package version; every command has a description.
 */
import { readFileSync } from "node:fs";
import { Command, CommanderError } from "commander";
import { errorMessage } from "../lib/errors.ts";
import { registerAuditCommand } from "./commands/audit.ts";
import { registerDeploymentCommands } from "./commands/deployment.ts";
import { registerDeviceCommands } from "./commands/devices.ts";
import { registerKeyCommands } from "./commands/keys.ts";
import { registerMapCommands } from "./commands/map.ts";
import { EXIT_RUNTIME, EXIT_USAGE } from "./commands/shared.ts";
import { registerSiteCommands } from "./commands/sites.ts";
import { registerStatusCommand } from "./commands/status.ts";

export { EXIT_RUNTIME, EXIT_USAGE };

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
  registerSiteCommands(program);
  registerDeviceCommands(program);
  registerMapCommands(program);
  registerKeyCommands(program);
  registerDeploymentCommands(program);
  registerStatusCommand(program);
  registerAuditCommand(program);
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
