/**
 * Azurite's table service (Microsoft's storage emulator, from node_modules) as a child process on
 * a free port. The port ledger and the Functions host's storage run against it locally.
 *
 * With `oauth`, it serves HTTPS with a throwaway local CA (Azurite takes bearer tokens only over
 * HTTPS) and checks Microsoft Entra ID tokens (`--oauth basic`: issuer, audience and lifetime, not
 * the signature nor any role), so the simulation reaches the ledger with managed identities as
 * Azure does; the account key keeps working beside it.
 *
 * Azurite's own `azurite-table` entry point accepts `--tablePort 0` but then prints `:0`, so the
 * real port cannot be read back. The child therefore runs a few lines that build Azurite's
 * `TableServer` directly (the same classes the entry point uses) and print the bound address as
 * one JSON line: port 0 with no race and no retry loop.
 *
 * Point operations are made constant-time, as Azure's are (ADR 0033): Azurite's in-memory store
 * (LokiJS) looks an entity up by `{ PartitionKey, RowKey }`, which LokiJS answers from its
 * PartitionKey index and then a scan of the whole partition for the RowKey. The ledger keeps each
 * kind of row in one partition (20,000 route rows at 10,000 sites), so every read, insert and
 * replace cost grew with the fleet (1.6 ms of Azurite's CPU a point read at 1,000 rows, 10.6 ms at
 * 20,000) and the storage emulator, not IoT Hub's quotas, bounded a large onboarding. The child
 * asks the same two equalities the other way round (an `$and`: the same entity), so LokiJS starts
 * from its RowKey index, which Azurite also keeps. Nothing else of Azurite changes.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { writeLocalCertificates } from "../lib/tls/local-ca.ts";
import { EXIT_WITH_PARENT, exitWithParentEnv } from "./child-process.ts";

/** The well-known development account every Azurite install accepts (documented by Microsoft). */
export const AZURITE_ACCOUNT = "devstoreaccount1";
export const AZURITE_KEY =
  "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

export interface AzuriteOptions {
  /** Persist tables under this directory; in memory when absent. */
  dir?: string;
  /** Milliseconds to wait for the service to start (default 60 s: a loaded machine is slow). */
  startTimeoutMs?: number;
  /** Port to bind (a restart after a crash keeps its port); default any free port. */
  port?: number;
  /** Append the service's output here (kept for a crash's post-mortem). */
  logFile?: string;
  /**
   * HTTPS with a local CA (kept in `<dir>/tls`, so a restart keeps the CA clients already trust)
   * and Entra ID bearer tokens accepted (Azurite's `--oauth basic`).
   */
  oauth?: boolean;
}

export interface Azurite {
  /** Storage connection string (development account, `TableEndpoint` set). */
  connectionString: string;
  /** `http://127.0.0.1:<port>/devstoreaccount1` (`https://` with `oauth`): also the table service URL. */
  tableEndpoint: string;
  /** The CA that signed the HTTPS certificate (with `oauth`): what clients trust. */
  caFile: string | undefined;
  port: number;
  pid: number | undefined;
  /** Resolves with the exit code (or signal name) when the service process ends. */
  exited: Promise<number | string>;
  /** True once `close()` was called: an exit after it is intended, not a crash. */
  readonly closing: boolean;
  close(): Promise<void>;
}

// Runs inside the child (CommonJS, `node -e`). It exits when its stdin closes, so an Azurite
// whose parent died does not linger.
const CHILD_SCRIPT = `
const dist = process.env.AZURITE_DIST;
const Config = require(dist + "/table/TableConfiguration").default;
const Server = require(dist + "/table/TableServer").default;
const path = require("node:path");
const memory = process.env.AZURITE_MEMORY === "1";
const Loki = require(require.resolve("lokijs", { paths: [dist] }));
const findOne = Loki.Collection.prototype.findOne;
Loki.Collection.prototype.findOne = function (query) {
  const keys = query && typeof query === "object" ? Object.keys(query) : [];
  if (keys.length === 2 && keys[0] === "PartitionKey" && keys[1] === "RowKey" && typeof query.RowKey === "string")
    return findOne.call(this, { RowKey: query.RowKey, PartitionKey: query.PartitionKey });
  return findOne.call(this, query);
};
const dbPath = path.join(process.env.AZURITE_LOCATION, "__azurite_db_table__.json");
const cert = process.env.AZURITE_CERT || "";
const key = process.env.AZURITE_KEY_FILE || "";
const config = new Config("127.0.0.1", Number(process.env.AZURITE_PORT || 0), 5, dbPath, false, false, undefined, undefined,
  true, true, cert, key, "", cert ? "basic" : undefined, false, memory);
const server = new Server(config);
let closing = false;
const stop = () => {
  if (closing) return;
  closing = true;
  server.close().then(() => process.exit(0), () => process.exit(1));
  setTimeout(() => process.exit(0), 3000).unref();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.stdin.on("end", stop);
process.stdin.on("close", stop);
process.stdin.resume();
server.start().then(() => {
  process.stdout.write(JSON.stringify({ event: "listening", address: server.getHttpServerAddress() }) + "\\n");
}, (err) => {
  process.stderr.write("azurite failed to start: " + (err && err.message) + "\\n");
  process.exit(1);
});
`;

function azuriteDist(): string {
  const require = createRequire(import.meta.url);
  // package.json of azurite has no "exports" map, so its files resolve directly.
  return join(dirname(require.resolve("azurite/package.json")), "dist", "src");
}

/** Builds the connection string a `TableClient` needs for an Azurite table endpoint. */
export function azuriteConnectionString(tableEndpoint: string): string {
  const protocol = tableEndpoint.startsWith("https:") ? "https" : "http";
  return `DefaultEndpointsProtocol=${protocol};AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};TableEndpoint=${tableEndpoint};`;
}

/** The local CA and HTTPS certificate of an Azurite with `oauth`: made once per directory. */
function azuriteTls(location: string): { caFile: string; certFile: string; keyFile: string } {
  const dir = join(location, "tls");
  const files = {
    caFile: join(dir, "ca.pem"),
    certFile: join(dir, "server.pem"),
    keyFile: join(dir, "server-key.pem"),
  };
  if (Object.values(files).every((f) => existsSync(f))) return files;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const written = writeLocalCertificates(dir, [], "Relay Fleet local storage CA");
  return { caFile: written.caFile, certFile: written.certFile, keyFile: written.keyFile };
}

/** Starts Azurite's table service on a free loopback port. */
export async function startAzurite(options: AzuriteOptions = {}): Promise<Azurite> {
  const ownDir = options.dir === undefined ? mkdtempSync(join(tmpdir(), "rf-azurite-")) : undefined;
  const location = options.dir ?? (ownDir as string);
  const tls = options.oauth ? azuriteTls(location) : undefined;
  const child: ChildProcess = spawn(process.execPath, ["--import", EXIT_WITH_PARENT, "-e", CHILD_SCRIPT], {
    cwd: location,
    env: {
      ...process.env,
      ...exitWithParentEnv(),
      AZURITE_DIST: azuriteDist(),
      AZURITE_LOCATION: location,
      AZURITE_MEMORY: options.dir === undefined ? "1" : "0",
      AZURITE_PORT: String(options.port ?? 0),
      ...(tls ? { AZURITE_CERT: tls.certFile, AZURITE_KEY_FILE: tls.keyFile } : {}),
    },
    stdio: ["pipe", "pipe", "pipe"],
  });
  const exited = new Promise<number | string>((r) =>
    child.once("exit", (code, signal) => r(code ?? signal ?? "unknown")),
  );
  let stderr = "";
  const log = options.logFile ? createWriteStream(options.logFile, { flags: "a", mode: 0o600 }) : undefined;
  if (log) {
    child.stdout?.on("data", (c: Buffer) => log.write(c));
    void exited.then(() => log.end());
  }
  child.stderr?.setEncoding("utf8").on("data", (c: string) => {
    log?.write(c);
    stderr = (stderr + c).slice(-4096);
  });
  const cleanupDir = () => {
    if (ownDir) rmSync(ownDir, { recursive: true, force: true });
  };
  let closing = false;
  const close = async () => {
    closing = true;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 3_000);
      await exited;
      clearTimeout(timer);
    }
    cleanupDir();
  };

  try {
    const address = await new Promise<string>((resolve, reject) => {
      let out = "";
      const timer = setTimeout(
        () => reject(new Error(`Azurite did not start within ${options.startTimeoutMs ?? 60_000} ms`)),
        options.startTimeoutMs ?? 60_000,
      );
      child.stdout?.setEncoding("utf8").on("data", (c: string) => {
        out += c;
        const line = out.split("\n").find((l) => l.includes('"listening"'));
        if (!line) return;
        clearTimeout(timer);
        const parsed = JSON.parse(line) as { address?: unknown };
        if (typeof parsed.address !== "string") reject(new Error("Azurite printed no address"));
        else resolve(parsed.address);
      });
      void exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`Azurite exited before listening: ${stderr.trim() || "no output"}`));
      });
    });
    const port = Number(new URL(address).port);
    const tableEndpoint = `${tls ? "https" : "http"}://127.0.0.1:${port}/${AZURITE_ACCOUNT}`;
    return {
      connectionString: azuriteConnectionString(tableEndpoint),
      tableEndpoint,
      caFile: tls?.caFile,
      port,
      pid: child.pid,
      exited,
      get closing() {
        return closing;
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
