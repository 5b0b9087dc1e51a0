/**
 * `npm start`: the whole hybrid relay pattern on this machine, without an Azure account (the
 * local counterpart of `iotedgedev simulator start`). Thin entry point: options, output and
 * Ctrl-C; the work is in fleet.ts.
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { styleText } from "node:util";
import { Command } from "commander";
import { colorWanted } from "../lib/color.ts";
import { HUB_SKUS, hubSkuSchema } from "../lib/hub-fleet-size.ts";
import { killAllChildren } from "./child-process.ts";
import { Fleet, type PartEvent } from "./fleet.ts";
import { portLines, readFleetStatus, renderPorts, renderStatus } from "./live-status.ts";

const program = new Command()
  .name("npm start --")
  .description("Run the hybrid relay pattern locally: emulators, rollout, gateways and simulated sites.")
  .option("--sites <n>", "simulated sites to onboard", "2")
  .option("--gateways <n>", "gateway instances (127.0.0.1, 127.0.0.2, …)", "1")
  .option(
    "--modules-per-site <n>",
    "edge devices per site, each with its own relayListener module identity (2 = a redundant pair)",
    "1",
  )
  .option("--state-dir <dir>", "keep state (IoT Hub, ledger, relay) here across runs; default: a temp dir")
  .option(
    "--hub-sku <sku>",
    `IoT Hub throttles the hub emulator enforces (${HUB_SKUS.join(", ")}, or none: unthrottled)`,
    process.env.RELAY_FLEET_SIM_HUB_SKU || "S1",
  )
  .option("--hub-units <n>", "units of --hub-sku", process.env.RELAY_FLEET_SIM_HUB_UNITS || "1")
  .option("--no-ui", "plain log lines instead of the live status view")
  .option("--json", "machine-readable JSON lines on stdout (implies --no-ui)")
  .parse();

const opts = program.opts<{
  sites: string;
  gateways: string;
  modulesPerSite: string;
  stateDir?: string;
  hubSku: string;
  hubUnits: string;
  ui: boolean;
  json?: boolean;
}>();

function count(name: string, value: string, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > max) {
    process.stderr.write(`--${name} must be a whole number from 0 to ${max}.\n`);
    process.exit(2);
  }
  return n;
}

const sites = count("sites", opts.sites, 200);
const gateways = Math.max(1, count("gateways", opts.gateways, 8));
const modulesPerSite = Math.max(1, count("modules-per-site", opts.modulesPerSite, 4));
const hubSku = hubSkuSchema.safeParse(opts.hubSku);
if (opts.hubSku !== "none" && !hubSku.success) {
  process.stderr.write(`--hub-sku must be one of ${HUB_SKUS.join(", ")} or none.\n`);
  process.exit(2);
}
// The smallest production hub by default (S1 × 1): the simulation meets the quotas production will.
const hubQuotas = hubSku.success
  ? { sku: hubSku.data, units: Math.max(1, count("hub-units", opts.hubUnits, 200)) }
  : undefined;
const json = opts.json === true;
const ui = opts.ui && !json && process.stdout.isTTY === true;
const color = (style: Parameters<typeof styleText>[0], text: string) =>
  colorWanted(ui) ? styleText(style, text) : text;

// Everything the simulation and its parts write (state with keys, logs, certificates, the
// discovery file) is this user's only: files 0600, directories 0700.
process.umask(0o077);

const persistent = opts.stateDir !== undefined;
const stateDir = persistent
  ? resolve(opts.stateDir as string)
  : mkdtempSync(join(tmpdir(), "relay-fleet-sim-"));
mkdirSync(stateDir, { recursive: true, mode: 0o700 });
// The CLI finds the running simulation through this file (cli/discovery.ts).
const discoveryDir = resolve(".sim-state");
const discoveryFile = join(discoveryDir, "sim.json");

function emit(event: string, data: Record<string, unknown> = {}): void {
  if (json) process.stdout.write(`${JSON.stringify({ event, ...data })}\n`);
}

let fleet: Fleet | undefined;
let shuttingDown = false;
let startFailed = false;
/** Once the live view draws, progress and crash lines go into it instead of scrolling past. */
let liveView = false;
const recentEvents: string[] = [];

/**
 * Logs of a temporary state dir go with it at Ctrl-C, unless something went wrong (a crash, a
 * failed start): then everything but the logs is removed and the logs' path is printed.
 */
function cleanUpState(): string | undefined {
  if (persistent) return undefined;
  const crashes = fleet?.supervisor.crashes() ?? 0;
  if (crashes === 0 && !startFailed) {
    rmSync(stateDir, { recursive: true, force: true });
    return undefined;
  }
  for (const entry of readdirSync(stateDir))
    if (entry !== "logs") rmSync(join(stateDir, entry), { recursive: true, force: true });
  return join(stateDir, "logs");
}

async function shutdown(code: number): Promise<void> {
  if (shuttingDown) return;
  shuttingDown = true;
  if (!json) process.stdout.write(`\n${color("yellow", "stopping every process…")}\n`);
  emit("stopping");
  const hardStop = setTimeout(() => {
    killAllChildren();
    process.exit(code);
  }, 15_000);
  hardStop.unref();
  await fleet?.stop().catch(() => undefined);
  rmSync(discoveryFile, { force: true });
  const logsKept = cleanUpState();
  if (logsKept) {
    const crashes = fleet?.supervisor.crashes() ?? 0;
    const why = startFailed ? "the start failed" : `${crashes} crash${crashes === 1 ? "" : "es"} in this run`;
    if (!json) process.stdout.write(`Logs kept (${why}): ${logsKept}\n`);
  }
  emit("stopped", logsKept ? { logsKept } : {});
  process.exit(code);
}
process.on("SIGINT", () => void shutdown(0));
process.on("SIGTERM", () => void shutdown(0));

function progress(step: string): void {
  if (json) emit("progress", { step });
  else if (liveView) {
    recentEvents.push(`${new Date().toISOString().slice(11, 19)} ${step}`);
    recentEvents.splice(0, Math.max(0, recentEvents.length - 5));
  } else process.stdout.write(`${color("dim", "•")} ${step}\n`);
}

function partEvent(event: PartEvent): void {
  const { type, ...data } = event;
  emit(`part-${type}`, data);
}

try {
  const started = Date.now();
  fleet = await Fleet.start({
    stateDir,
    sites,
    gateways,
    modulesPerSite,
    ...(hubQuotas ? { hubQuotas } : {}),
    onProgress: progress,
    // Like IoT Edge's restartPolicy: always: a crashed part comes back with its state and port.
    restartCrashed: true,
    onPartEvent: partEvent,
  });
  mkdirSync(discoveryDir, { recursive: true });
  writeFileSync(
    discoveryFile,
    `${JSON.stringify({ version: 1, rollout: { url: fleet.rollout.url, functionKey: fleet.rollout.functionKey }, pid: process.pid, stateDir }, null, 2)}\n`,
    { mode: 0o600 },
  );
  const siteList = [...fleet.sites.values()].map((s) => ({ siteId: s.siteId, publicPorts: s.publicPorts }));
  emit("ready", {
    seconds: (Date.now() - started) / 1000,
    gateways: fleet.gateways.map((g) => g.host),
    rollout: fleet.rollout.url,
    statusPage: fleet.statusPageUrl,
    relay: fleet.relay.url,
    // The IoT Hub throttles the hub emulator enforces (null: none).
    iotHubQuotas: hubQuotas ?? null,
    sites: siteList,
    stateDir,
    logs: fleet.logsDir,
    parts: fleet.parts().map((p) => ({ part: p.part, pid: p.pid })),
  });
  if (!json) printWelcome(fleet, (Date.now() - started) / 1000);
  await runStatusLoop(fleet);
} catch (err) {
  startFailed = true;
  process.stderr.write(
    `${color("red", "The simulation could not start:")} ${err instanceof Error ? err.message : String(err)}\n`,
  );
  process.stderr.write(`Logs of every part are kept in ${join(stateDir, "logs")}.\n`);
  await shutdown(1);
}

function printWelcome(f: Fleet, seconds: number): void {
  const host = f.gateways[0]?.host ?? "127.0.0.1";
  const lines = [
    "",
    color(
      "green",
      `Relay Fleet is running (${seconds.toFixed(1)} s). Every part is a real process on loopback:`,
    ),
    `  relay emulator ${f.relay.url}   IoT Hub emulator ${f.hub.hostName}:${f.hub.mqttPort} (MQTT) / :${f.hub.httpsPort} (REST)`,
    `  rollout API    ${f.rollout.url}/api/sites   gateways ${f.gateways.map((g) => g.host).join(", ")}`,
    "",
    `${color("bold", "Fleet status page:")} ${f.statusPageUrl}`,
  ];
  // The live view below keeps the port table current (sites and mappings added with the CLI);
  // without it, the table is printed here and each change as a line.
  if (!ui)
    lines.push(
      "",
      color("bold", "Public ports (gateway → relay → site module → on-prem service):"),
      renderPorts(portLines(f), host),
    );
  const first = [...f.sites.values()][0];
  if (first) {
    lines.push(
      "",
      color("bold", "Try:"),
      `  curl http://${host}:${first.publicPorts.web}/`,
      `  echo hello | nc -N ${host} ${first.publicPorts.echo}`,
    );
  }
  lines.push(
    `  npx relay-fleet status            (fleet table from IoT Hub; the CLI finds this simulation via .sim-state/sim.json)`,
    "  npx relay-fleet sites add site-x   (onboards a site with the default profile, live)",
    "  npx relay-fleet map add plant-1 mine 127.0.0.1:8000   (your own service on this machine, live;",
    "                                 the simulated sites' allowlist is 127.0.0.1 only; the new public port is printed and listed here)",
    "",
    `Logs: ${join(stateDir, "logs")}    Ctrl-C stops everything.`,
    "",
  );
  process.stdout.write(`${lines.join("\n")}\n`);
}

async function runStatusLoop(f: Fleet): Promise<void> {
  let lastPlain = 0;
  let drawnLines = 0;
  liveView = ui;
  let lastSync = Date.now();
  for (;;) {
    if (shuttingDown) return;
    if (Date.now() - lastSync > 3_000) {
      lastSync = Date.now();
      // Sites added or removed with the CLI take effect live: start or stop their modules.
      const changes = await f.syncSites().catch(() => ({
        started: [] as string[],
        stopped: [] as string[],
        changed: [] as string[],
        devices: [] as string[],
      }));
      for (const siteId of changes.started)
        emit("site-started", { siteId, publicPorts: f.sites.get(siteId)?.publicPorts });
      for (const siteId of changes.stopped) emit("site-stopped", { siteId });
      for (const siteId of changes.changed)
        emit("site-updated", { siteId, publicPorts: f.sites.get(siteId)?.publicPorts });
      for (const siteId of changes.devices)
        emit("site-devices", { siteId, devices: f.sites.get(siteId)?.devices });
      if (!ui && !json) {
        for (const siteId of changes.started)
          process.stdout.write(
            `site ${siteId} is online: ${JSON.stringify(f.sites.get(siteId)?.publicPorts)}\n`,
          );
        for (const siteId of changes.stopped) process.stdout.write(`site ${siteId} was removed\n`);
        for (const siteId of changes.devices)
          process.stdout.write(`site ${siteId}'s devices: ${f.sites.get(siteId)?.devices.join(", ")}\n`);
        for (const siteId of changes.changed)
          process.stdout.write(
            `site ${siteId}'s mappings changed: ${JSON.stringify(f.sites.get(siteId)?.publicPorts)}\n`,
          );
      }
    }
    const status = await readFleetStatus(f);
    if (json) emit("status", { ...status });
    else if (ui) {
      const events = recentEvents.length > 0 ? ["", "recent:", ...recentEvents.map((e) => `  ${e}`)] : [];
      const text = [renderStatus(status), ...events].join("\n");
      // Redraw in place: move up over the previous table, clear to the end of the screen.
      if (drawnLines > 0) process.stdout.write(`\x1b[${drawnLines}F\x1b[J`);
      process.stdout.write(`${text}\n`);
      drawnLines = screenRows(text);
    } else if (Date.now() - lastPlain > 30_000) {
      lastPlain = Date.now();
      process.stdout.write(`${renderStatus(status)}\n\n`);
    }
    await new Promise((r) => setTimeout(r, 1_000));
  }
}

/** Rows `text` takes on the terminal: a line wider than the screen wraps onto the next row. */
function screenRows(text: string): number {
  const columns = process.stdout.columns || 80;
  return text.split("\n").reduce((rows, line) => rows + Math.max(1, Math.ceil(line.length / columns)), 0);
}
