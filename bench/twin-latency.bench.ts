/**
 * Twin-to-traffic latency of the edge module: time from a desired patch written through the real
 * `Registry.updateModuleTwin` (IoT Hub emulator) to the new mapping accepting its first relayed
 * connection (relay emulator, TLS), p50 over 50 changes. The module is a real child process; the
 * probe retries a sender connection every 5 ms until the mapping answers its preamble.
 */
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import {
  openPort,
  patchDesired,
  startEcho,
  startModuleProcess,
  startSite,
  waitReported,
} from "../test/integration/module-harness.ts";
import type { BenchSection } from "./types.ts";

const CHANGES = 50;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

export async function runBenchmark(): Promise<BenchSection> {
  const cleanups: Array<() => unknown> = [];
  const ctx = { after: (fn: () => unknown) => cleanups.push(fn) };
  try {
    const site = await startSite(ctx, "bench-site");
    const echo = await startEcho(ctx);
    await patchDesired(site, { relay: site.relaySection(), mappings: {} });
    await startModuleProcess(ctx, site, { LOG_LEVEL: "info", REPORT_INTERVAL_MS: "1000" });
    await waitReported(site, (r) => r.relay?.status === "online", "relay online", 30_000);
    const samples: number[] = [];
    let probes = 0;
    for (let i = 0; i < CHANGES; i++) {
      const name = `bench${i}`;
      const started = performance.now();
      await patchDesired(site, { mappings: { [name]: { target: `127.0.0.1:${echo.port}` } } });
      for (;;) {
        probes++;
        try {
          const { ws } = await openPort(site, name, 5_000);
          ws.close();
          break;
        } catch {
          if (performance.now() - started > 30_000) throw new Error(`mapping ${name} never accepted`);
          await new Promise((r) => setTimeout(r, 5));
        }
      }
      samples.push(performance.now() - started);
    }
    const sorted = [...samples].sort((a, b) => a - b);
    const p50 = percentile(sorted, 50);
    return {
      title: "Edge module: desired patch to first accepted connection",
      figures: [
        {
          metric: "patch → first connection, p50",
          value: p50,
          unit: "ms",
          target: "< 500 ms",
          met: p50 < 500,
        },
        { metric: "patch → first connection, p90", value: percentile(sorted, 90), unit: "ms" },
        {
          metric: "patch → first connection, max",
          value: sorted[sorted.length - 1] ?? Number.NaN,
          unit: "ms",
        },
      ],
      notes: [
        `${CHANGES} changes, each adding one mapping through Registry.updateModuleTwin (IoT Hub emulator, HTTPS) while the module runs as a child process (ModuleClient over MQTT/TLS, relay emulator over wss).`,
        `Includes the REST call, the desired-patch delivery over MQTT, validation and reconcile, and one relayed connection with preamble; ${probes} sender probes in total (a probe before the mapping exists is closed by the module).`,
      ],
    };
  } finally {
    for (const fn of cleanups.reverse()) await Promise.resolve(fn()).catch(() => {});
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  runBenchmark().then(
    (section) => {
      console.log(JSON.stringify(section, null, 2));
      process.exit(0);
    },
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
