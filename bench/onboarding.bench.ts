/**
 * Onboarding throughput: 1,000 sites through the rollout HTTP API (served in-process over
 * node:http, the same handlers the Functions host runs) against the IoT Hub emulator, the relay
 * emulator and Azurite. Target: all 1,000 in under 60 s.
 */
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

const SITES = Number(process.env.BENCH_ONBOARD_SITES ?? 1000);
const CONCURRENCY = Number(process.env.BENCH_ONBOARD_CONCURRENCY ?? 16);

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
  let failures = 0;
  let firstError = "";
  const started = process.hrtime.bigint();
  let seconds = 0;
  let uniquePorts = false;
  let routeCount = 0;
  try {
    let next = 0;
    const worker = async () => {
      while (next < SITES) {
        const i = next++;
        const res = await fetch(`${server.url}/api/sites`, {
          method: "POST",
          headers: { "x-functions-key": server.functionKey, "content-type": "application/json" },
          body: JSON.stringify({ siteId: `bench-${String(i).padStart(4, "0")}` }),
        });
        const text = await res.text();
        if (res.status !== 201) {
          failures++;
          firstError ||= `${res.status} ${text.slice(0, 200)}`;
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  } finally {
    seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const routes = await rollout.deps.ledger.listRoutes();
    uniquePorts = new Set(routes.map((r) => r.port)).size === routes.length;
    routeCount = routes.length;
    await server.close();
    await Promise.all([azurite.close(), hubEmu.close(), relayEmu.close()]);
  }
  return {
    title: "Rollout: onboarding through the HTTP API",
    figures: [
      {
        metric: `onboard ${SITES} sites (total)`,
        value: Number(seconds.toFixed(2)),
        unit: "s",
        target: "< 60 s",
        met: seconds < 60 && failures === 0,
      },
      { metric: "onboarding rate", value: Number((SITES / seconds).toFixed(1)), unit: "sites/s" },
      { metric: "failed requests", value: failures, unit: "count" },
    ],
    notes: [
      `${CONCURRENCY} concurrent API clients; each site: edge device + module identity, hybrid connection with Listen and Send rules, 2 public ports, module twin, device tags, ledger row.`,
      `${routeCount} routes allocated, ports unique: ${uniquePorts}.`,
      ...(firstError ? [`first failure: ${firstError}`] : []),
    ],
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  runBenchmark().then(
    (section) => console.log(JSON.stringify(section, null, 2)),
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
