/**
 * The load generator: one process holding many simulated sites (light sites that answer every
 * tunnel as the module does and echo its bytes, sim/light-site.ts) and many simulated modules on
 * IoT Hub (the device SDK wired as relayListener wires it, hub-module.ts), for the scale benchmark
 * (bench/scale.bench.ts).
 *
 *   node --import tsx sim/load-generator/main.ts <config.json>
 *
 * The config (schema below) lists connection strings and relay credentials; the benchmark writes
 * it from what the rollout API onboarded. Starts are paced (`startPerSecond`), as a fleet coming
 * online over time would be. Prints JSON lines: `status` every `statusEveryMs`, `ready` once all
 * are started; SIGTERM closes everything.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { z } from "zod";
import { errorMessage } from "../../lib/errors.ts";
import { createLogger } from "../../lib/log.ts";
import { LightSite } from "../light-site.ts";
import { type ConnectPath, SimulatedHubModule } from "./hub-module.ts";

const configSchema = z.object({
  statusEveryMs: z.number().int().min(100).default(2_000),
  modules: z
    .object({
      ca: z.string(),
      reconnect: z.object({
        fleetSize: z.number().int().min(1),
        connectsPerSecond: z.number().positive(),
        minPeriodMs: z.number().int().min(10),
      }),
      startPerSecond: z.number().positive(),
      connectionStrings: z.array(z.string().min(1)),
      /**
       * Where to write each module's connection attempts (time, code path) and slot on SIGUSR2,
       * for the benchmark's diagnosis of a reconnect wave.
       */
      diagnosticsFile: z.string().optional(),
    })
    .optional(),
  sites: z
    .object({
      ca: z.string().optional(),
      channels: z.number().int().min(1).max(8).default(2),
      startPerSecond: z.number().positive(),
      list: z.array(
        z.object({
          endpoint: z.string(),
          hybridConnection: z.string(),
          keyName: z.string(),
          key: z.string(),
        }),
      ),
    })
    .optional(),
});
export type LoadGeneratorConfig = z.input<typeof configSchema>;

const log = createLogger("load-generator", { level: process.env.LOG_LEVEL ?? "silent" });
process.stdout.on("error", () => process.exit(0)); // the benchmark that reads us is gone
const say = (event: string, fields: Record<string, unknown>) =>
  process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);

async function paced<T>(items: T[], perSecond: number, start: (item: T) => void): Promise<void> {
  const began = Date.now();
  for (const [i, item] of items.entries()) {
    const due = began + (i / perSecond) * 1_000;
    if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
    start(item);
  }
}

async function main(): Promise<void> {
  const path = process.argv[2];
  if (!path) throw new Error("usage: main.ts <config.json>");
  const config = configSchema.parse(JSON.parse(readFileSync(path, "utf8")));
  const modules: SimulatedHubModule[] = [];
  const sites: LightSite[] = [];
  let modulesOpen = 0;
  let moduleFailures = 0;
  const attempts: Array<Array<[number, ConnectPath, number, string]>> = [];
  // How late this process runs its timers: a starved load generator bunches its modules' attempts.
  const lag = monitorEventLoopDelay({ resolution: 20 });
  lag.enable();
  const status = () => ({
    modules: modules.length,
    modulesOpen,
    moduleFailures,
    sites: sites.length,
    channelsOnline: sites.reduce((n, s) => n + s.channelsOnline(), 0),
    tunnels: sites.reduce((n, s) => n + s.accepted, 0),
    rssMb: Math.round(process.memoryUsage().rss / 2 ** 20),
    cpuMs: Math.round((process.cpuUsage().user + process.cpuUsage().system) / 1_000),
    loopDelayMaxMs: Math.round(lag.max / 1e6),
    loopDelayP99Ms: Math.round(lag.percentile(99) / 1e6),
  });
  const timer = setInterval(() => {
    say("status", status());
    lag.reset();
  }, config.statusEveryMs);
  process.on("SIGUSR2", () => {
    const file = config.modules?.diagnosticsFile;
    if (!file) return;
    writeFileSync(
      file,
      JSON.stringify({
        modules: modules.map((m, i) => ({
          phase: m.slots.phase,
          periodMs: m.slots.periodMs,
          attempts: attempts[i] ?? [],
        })),
      }),
    );
    say("diagnostics", { file });
  });
  const stop = async () => {
    clearInterval(timer);
    await Promise.allSettled([...modules.map((m) => m.stop()), ...sites.map((s) => s.close())]);
    process.exit(0);
  };
  process.once("SIGTERM", () => void stop());
  process.once("SIGINT", () => void stop());

  const work: Promise<void>[] = [];
  const m = config.modules;
  if (m)
    work.push(
      paced(m.connectionStrings, m.startPerSecond, (connectionString) => {
        const mine: Array<[number, ConnectPath, number, string]> = [];
        attempts.push(mine);
        const module = new SimulatedHubModule({
          connectionString,
          ca: m.ca,
          reconnect: m.reconnect,
          logger: log,
          ...(m.diagnosticsFile
            ? {
                onConnectAttempt: (path, at) => {
                  const entry: [number, ConnectPath, number, string] = [at, path, -1, "pending"];
                  mine.push(entry);
                  return (outcome) => {
                    entry[2] = Date.now() - at;
                    entry[3] = outcome;
                  };
                },
              }
            : {}),
        });
        modules.push(module);
        module.start().then(
          () => modulesOpen++,
          (err: unknown) => {
            moduleFailures++;
            log.warn({ err: errorMessage(err) }, "simulated module failed to start");
          },
        );
      }),
    );
  const s = config.sites;
  if (s)
    work.push(
      paced(s.list, s.startPerSecond, (site) => {
        const echoSite = new LightSite({
          ...site,
          ca: s.ca,
          channels: s.channels,
          streams: "echo",
          logger: log,
        });
        sites.push(echoSite);
        echoSite.start();
      }),
    );
  await Promise.all(work);
  say("ready", status());
}

main().catch((err: unknown) => {
  say("failed", { error: errorMessage(err) });
  process.exit(1);
});
