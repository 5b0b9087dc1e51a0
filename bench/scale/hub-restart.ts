/**
 * The IoT Hub emulator (S1, 1 unit: 100 new connections a second) restarted under N connected
 * simulated modules held by the load generator: how fast the fleet's reconnects arrive (the
 * busiest second against the quota, throttled CONNECTs) and how long until all are back, against
 * the time the quota allows (N / 100 s, less the one-second burst the hub's bucket starts with).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type IotHubEmulator, startIotHubEmulator } from "../../sim/iothub-emulator/index.ts";
import { hubRates, type QuotaClass } from "../../sim/iothub-emulator/quotas.ts";
import type { LoadGeneratorConfig } from "../../sim/load-generator/main.ts";
import type { BenchSection } from "../types.ts";
import { startBenchChild } from "./child.ts";
import { machineLoad, sampleProc } from "./proc-usage.ts";

/** The module's default share of S1's 100/s (modules/relayListener/src/settings.ts). */
const BUDGET = 95;

export async function hubRestartSection(modules: number): Promise<BenchSection> {
  const dir = mkdtempSync(join(tmpdir(), "bench-hub-restart-"));
  const stateFile = join(dir, "state.json");
  const quota = hubRates("S1", 1).connect;
  const accepted: number[] = [];
  let throttled = 0;
  const onQuotaDecision = (cls: QuotaClass, allowed: boolean, at: number) => {
    if (cls !== "connect") return;
    if (allowed) accepted.push(at);
    else throttled++;
  };
  const options = {
    dir,
    stateFile,
    workloadPort: false as const,
    sku: "S1" as const,
    units: 1,
    onQuotaDecision,
  };
  let emu: IotHubEmulator = await startIotHubEmulator(options);
  const ids = Array.from({ length: modules }, (_, i) => `scale-${String(i).padStart(5, "0")}`);
  // Identities are set up in process (not through the registry API, whose quota is not measured here).
  for (const id of ids) emu.hub.createModule(emu.hub.createDevice(id, { iotEdge: true }), "relayListener");
  const config: LoadGeneratorConfig = {
    statusEveryMs: 1_000,
    modules: {
      ca: emu.caCert,
      reconnect: { fleetSize: modules, connectsPerSecond: BUDGET, minPeriodMs: 5_000 },
      startPerSecond: Number(process.env.BENCH_SCALE_START_PER_SECOND ?? 80),
      connectionStrings: ids.map((id) => emu.connectionString(id, "relayListener")),
    },
  };
  const configFile = join(dir, "load.json");
  writeFileSync(configFile, JSON.stringify(config));
  process.stderr.write(`scale: connecting ${modules} simulated modules\n`);
  const gen = startBenchChild("sim/load-generator/main.ts", [configFile], {});
  const notes: string[] = [];
  try {
    const shown = setInterval(
      () => process.stderr.write(`scale: ${JSON.stringify(gen.last("status") ?? {})}\n`),
      10_000,
    );
    try {
      await gen.waitFor("status", modules * 40 + 120_000, (l) => Number(l.modulesOpen) >= modules);
    } finally {
      clearInterval(shown);
    }
    const held = sampleProc(gen.pid);
    process.stderr.write("scale: restarting the IoT Hub emulator\n");
    const { mqttPort, httpsPort } = emu;
    await emu.close();
    accepted.length = 0;
    throttled = 0;
    const loadDuring = machineLoad();
    await new Promise((r) => setTimeout(r, 5_000));
    emu = await startIotHubEmulator({ ...options, mqttPort, httpsPort });
    const back = Date.now();
    const periodS = modules / BUDGET;
    const deadline = back + Math.max(60_000, periodS * 3_000);
    const connected = () =>
      ids.reduce(
        (n, id) => n + (emu.hub.module(id, "relayListener").connectionState === "Connected" ? 1 : 0),
        0,
      );
    let allBack = false;
    while (Date.now() < deadline) {
      if (connected() === modules) {
        allBack = true;
        break;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    const lastAccept = accepted.length ? Math.max(...accepted) : back;
    const seconds = (lastAccept - back) / 1_000;
    const perSecond = new Map<number, number>();
    for (const at of accepted) {
      const s = Math.floor((at - back) / 1_000);
      perSecond.set(s, (perSecond.get(s) ?? 0) + 1);
    }
    const busiest = Math.max(0, ...perSecond.values());
    // Mean of the busiest ten consecutive seconds: the sustained rate the quota is about.
    let busiest10 = 0;
    const lastSecond = Math.max(0, ...perSecond.keys());
    for (let s = 0; s <= lastSecond; s++) {
      let sum = 0;
      for (let k = s; k < s + 10; k++) sum += perSecond.get(k) ?? 0;
      busiest10 = Math.max(busiest10, sum / 10);
    }
    // The quota's bound: the hub's bucket starts with one second's budget, the rest at the rate.
    const minSeconds = Math.max(0, (modules - quota) / quota);
    notes.push(
      `${modules} simulated modules (device SDK ModuleClient over MQTT with TLS, wired as relayListener wires it: fleet-sized reconnect slots, HubConnection, TwinSync) in one load-generator process: ${Math.round(held?.rssMb ?? 0)} MiB RSS while holding them (${(((held?.rssMb ?? 0) * 1024) / modules).toFixed(0)} KiB a module).`,
      `Modules told HUB_FLEET_SIZE=${modules}, HUB_CONNECTS_PER_SECOND=${BUDGET} (period ${periodS.toFixed(1)} s). The emulator was stopped, left down 5 s and started again on the same ports and state; a connection counts from the hub's accepted CONNECT.`,
      `Quota bound: S1 allows ${quota} new connections a second, its bucket starting full: the minimum for ${modules} is (${modules} − ${quota}) / ${quota} = ${minSeconds.toFixed(1)} s; +10 % = ${(minSeconds * 1.1).toFixed(1)} s.`,
      `${allBack ? "All" : "NOT all"} modules connected again (${connected()} of ${modules} connected at the end, ${accepted.length} CONNECTs accepted after the restart); machine during the run: ${loadDuring}.`,
    );
    return {
      title: `Modules: IoT Hub emulator (S1) restarted under ${modules} connected modules`,
      figures: [
        {
          metric: "busiest second: new connections",
          value: busiest,
          unit: "/s",
          target: `<= ${quota} (S1 quota)`,
          met: busiest <= quota,
        },
        {
          metric: "busiest 10 s: mean new connections a second",
          value: Number(busiest10.toFixed(1)),
          unit: "/s",
          target: `<= ${quota}`,
          met: busiest10 <= quota,
        },
        {
          metric: "CONNECTs the hub throttled",
          value: throttled,
          unit: "count",
          target: "0",
          met: throttled === 0,
        },
        {
          metric: "time until all are back",
          value: Number(seconds.toFixed(1)),
          unit: "s",
          baselines: [{ name: "quota's minimum", value: Number(minSeconds.toFixed(1)) }],
          target: `<= ${(minSeconds * 1.1).toFixed(1)} s (minimum + 10 %)`,
          met: allBack && seconds <= minSeconds * 1.1,
        },
      ],
      notes,
    };
  } finally {
    await gen.stop();
    await emu.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
