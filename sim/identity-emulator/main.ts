/**
 * Command: `tsx sim/identity-emulator/main.ts [--host H] [--port N] [--trust-file F]
 * [--identity NAME]... [--token-lifetime S]`
 * Prints one JSON line `{"event":"listening", endpoint, url, issuer, adminToken, identities}` on
 * stdout (identities carry their IDENTITY_HEADER secrets: the supervisor hands each to its
 * process), then serves until SIGTERM/SIGINT.
 */
import { Command, InvalidArgumentError } from "commander";
import { startIdentityEmulator } from "./index.ts";

function int(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError("must be a non-negative integer");
  return n;
}

const program = new Command("identity-emulator")
  .description("Local managed-identity token issuer (App Service protocol)")
  .option("--host <host>", "interface to bind", "127.0.0.1")
  .option("--port <port>", "TCP port (0 = any free port)", int, 0)
  .option("--trust-file <file>", "write the issuer and its public key here for the emulators")
  .option(
    "--identity <name>",
    "create an identity at start (repeatable)",
    (v: string, p: string[]) => [...p, v],
    [] as string[],
  )
  .option("--token-lifetime <seconds>", "lifetime of issued tokens", int, 3600)
  .parse();

const opts = program.opts<{
  host: string;
  port: number;
  trustFile?: string;
  identity: string[];
  tokenLifetime: number;
}>();

let emulator: Awaited<ReturnType<typeof startIdentityEmulator>> | undefined;
let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  await emulator?.close();
  process.exit(0);
}
process.on("SIGTERM", () => void stop());
process.on("SIGINT", () => void stop());

emulator = await startIdentityEmulator({
  host: opts.host,
  port: opts.port,
  identities: opts.identity,
  tokenLifetimeSeconds: opts.tokenLifetime,
  ...(opts.trustFile ? { trustFile: opts.trustFile } : {}),
});

process.stdout.write(
  `${JSON.stringify({
    event: "listening",
    endpoint: emulator.endpoint,
    url: emulator.url,
    issuer: emulator.issuer,
    adminToken: emulator.adminToken,
    identities: Object.fromEntries(opts.identity.map((name) => [name, emulator?.identity(name)])),
  })}\n`,
);
