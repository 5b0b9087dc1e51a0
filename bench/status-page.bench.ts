/**
 * Fleet status page load time with 1,000 sites: 1,000 sites onboarded through the rollout
 * service into the real emulators (IoT Hub emulator, relay emulator, Azurite), the page served by
 * the rollout HTTP server, and Debian's Chromium (playwright-core) timing from navigation to the
 * rows on screen. Each load waits out the server's view cache, so every figure includes the IoT
 * Hub twin query and the ledger read. No module runs, so every site shows offline: the rows have
 * their full shape (device, mappings with public ports, drift) either way.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { setRollout } from "../cloud/functions/src/config.ts";
import { startRolloutHttpServer } from "../cloud/functions/src/http-server.ts";
import { createEmulatorRelayAdmin } from "../cloud/functions/src/relay-admin/index.ts";
import {
  createRegistryHub,
  createRollout,
  siteProfilesSchema,
} from "../cloud/functions/src/rollout/index.ts";
import { createIotHubServiceClients } from "../lib/azure/iothub-service.ts";
import { createLedger } from "../lib/ledger/index.ts";
import { startAzurite } from "../sim/azurite.ts";
import { startIotHubEmulator } from "../sim/iothub-emulator/index.ts";
import { startRelayEmulator } from "../sim/relay-emulator/index.ts";
import type { BenchSection } from "./types.ts";

const SITES = Number(process.env.BENCH_STATUS_PAGE_SITES ?? 1000);
const RUNS = Number(process.env.BENCH_STATUS_PAGE_RUNS ?? 5);
const CACHE_MS = 1500;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

export async function runBenchmark(): Promise<BenchSection> {
  const [azurite, hubEmu, relayEmu] = await Promise.all([
    startAzurite(),
    startIotHubEmulator(),
    startRelayEmulator(),
  ]);
  const { registry } = createIotHubServiceClients(hubEmu.serviceConnectionString, {
    restPort: hubEmu.httpsPort,
    ca: hubEmu.caCert,
  });
  const rollout = createRollout({
    hub: createRegistryHub(registry),
    relay: createEmulatorRelayAdmin({
      endpoint: relayEmu.url,
      manageKeyName: relayEmu.manageKeyName,
      manageKey: relayEmu.manageKey,
    }),
    ledger: createLedger(azurite.connectionString, "portledger", { ranges: [{ from: 40000, to: 44999 }] }),
    profiles: siteProfilesSchema.parse({
      default: { mappings: { rdp: { target: "10.0.0.5:3389" }, ssh: { target: "10.0.0.5:22" } } },
    }),
  });
  await rollout.deps.ledger.ensureTable();
  setRollout(rollout);
  const server = await startRolloutHttpServer(rollout);
  const userDataDir = mkdtempSync(join(tmpdir(), "relay-fleet-bench-chromium-"));
  try {
    let next = 0;
    const worker = async () => {
      while (next < SITES) {
        const i = next++;
        // Onboarding is idempotent: a call the busy emulator dropped is simply made again.
        for (let attempt = 1; ; attempt++) {
          try {
            await rollout.createSite({ siteId: `site-${String(i).padStart(4, "0")}` });
            break;
          } catch (err) {
            if (attempt >= 5) throw err;
            await new Promise((r) => setTimeout(r, 200 * attempt));
          }
        }
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));

    const context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: "/usr/bin/chromium",
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
      viewport: { width: 1400, height: 900 },
    });
    const url = `${server.url}/api/fleet?code=${encodeURIComponent(server.functionKey)}`;
    const load = async (hash: string, rows: number): Promise<number> => {
      const page = await context.newPage();
      await new Promise((r) => setTimeout(r, CACHE_MS + 100));
      const started = performance.now();
      await page.goto(`${url}${hash}`);
      // The page's CSP allows no eval, so wait with a locator: the last expected row is on screen.
      await page
        .locator("tbody tr")
        .nth(rows - 1)
        .waitFor({ timeout: 60_000 });
      const ms = performance.now() - started;
      await page.close();
      return ms;
    };
    const page50: number[] = [];
    const pageAll: number[] = [];
    const data: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      page50.push(await load("", 50));
      pageAll.push(await load("#/?size=1000", Math.min(1000, SITES)));
      await new Promise((r) => setTimeout(r, CACHE_MS + 100));
      const t0 = performance.now();
      const res = await fetch(`${server.url}/api/fleet/data?pageSize=50`, {
        headers: { "x-functions-key": server.functionKey },
      });
      await res.text();
      data.push(performance.now() - t0);
    }
    await context.close();
    return {
      title: `Fleet status page with ${SITES} sites (Chromium, median of ${RUNS})`,
      figures: [
        { metric: "page load to the first 50 rows (default page)", value: median(page50), unit: "ms" },
        { metric: `page load to all ${SITES} rows on one page`, value: median(pageAll), unit: "ms" },
        { metric: "data request (twin query + ledger + view, one page)", value: median(data), unit: "ms" },
      ],
      notes: [
        "each load waits out the 1.5 s view cache, so it includes the IoT Hub query and the ledger read",
        "no modules run: every site shows offline, with its device, two mappings and public ports",
      ],
    };
  } finally {
    await server.close();
    await Promise.all([azurite.close(), hubEmu.close(), relayEmu.close()]);
    rmSync(userDataDir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  runBenchmark().then(
    (section) => {
      console.log(JSON.stringify(section, null, 2));
      process.exit(0);
    },
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
