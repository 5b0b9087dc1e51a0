/**
 * Command: `tsx sim/relay-emulator/main.ts [--host H] [--port N] [--tls] [--dir D] [--state-file F]
 * [--hc NAME]... [--trust-file F]`. The root rule's key comes from RELAY_EMULATOR_MANAGE_KEY (kept out of `ps`), or
 * `--manage-key` for a quick manual run.
 * Prints one JSON line `{"event":"listening", url, endpoint, caFile, manageKeyName, manageKey?}` on
 * stdout, then serves until SIGTERM/SIGINT (clean exit 0).
 */
import { readFileSync } from "node:fs";
import { Command, InvalidArgumentError } from "commander";
import { parseTrustFile } from "../../lib/entra/jwt.ts";
import { startRelayEmulator } from "./index.ts";

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError("must be 0-65535");
  return n;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

const program = new Command("relay-emulator")
  .description("Local Azure Relay Hybrid Connections emulator")
  .option("--host <host>", "interface to bind", "127.0.0.1")
  .option("--port <port>", "TCP port (0 = any free port)", port, 0)
  .option("--tls", "serve wss:// with a generated CA", false)
  .option("--dir <dir>", "where to write the CA (tls)")
  .option("--state-file <file>", "load and save hybrid connections, rules and keys in this JSON file")
  .option(
    "--manage-key <key>",
    "key of RootManageSharedAccessKey (default: RELAY_EMULATOR_MANAGE_KEY, else random; prefer the variable: arguments show in ps)",
  )
  .option("--hc <name>", "create a hybrid connection at start (repeatable)", collect, [] as string[])
  .option("--trust-file <file>", "accept Entra ID tokens of the issuer in this file (identity emulator)")
  .parse();

const opts = program.opts<{
  host: string;
  port: number;
  tls: boolean;
  dir?: string;
  stateFile?: string;
  manageKey?: string;
  hc: string[];
  trustFile?: string;
}>();

// Handlers first: a supervisor may signal as soon as it reads the "listening" line.
let emulator: Awaited<ReturnType<typeof startRelayEmulator>> | undefined;
let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  await emulator?.close();
  process.exit(0);
}
process.on("SIGTERM", () => void stop());
process.on("SIGINT", () => void stop());

emulator = await startRelayEmulator({
  host: opts.host,
  port: opts.port,
  tls: opts.tls,
  dir: opts.dir,
  stateFile: opts.stateFile,
  manageKey: opts.manageKey ?? (process.env.RELAY_EMULATOR_MANAGE_KEY || undefined),
  hybridConnections: opts.hc.map((name) => ({ name })),
  trustedIssuers: opts.trustFile ? [parseTrustFile(readFileSync(opts.trustFile, "utf8"))] : [],
});

process.stdout.write(
  `${JSON.stringify({
    event: "listening",
    url: emulator.url,
    endpoint: emulator.endpoint,
    caFile: emulator.caFile ?? null,
    manageKeyName: emulator.manageKeyName,
    // A key the caller chose it already knows: not repeated into a line that lands in logs.
    ...(opts.manageKey || process.env.RELAY_EMULATOR_MANAGE_KEY ? {} : { manageKey: emulator.manageKey }),
  })}\n`,
);
