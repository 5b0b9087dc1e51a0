/**
 * The scale model (issue 18): the fleet's quota-bound figures at `--sites N` (default 1,000;
 * `npm run bench -- scale --sites 10000`, or BENCH_SCALE_SITES):
 *   - onboarding N sites through the rollout API on S3 (real time) and on S1 (quota windows
 *     time-scaled, said so in the figure), against the minimum the quotas allow;
 *   - the IoT Hub emulator restarted under N connected simulated modules (bench/scale/hub-restart.ts);
 *   - the onboarded sites online at the relay through the load generator, namespace occupancy
 *     against its connection quota; 5 gateways following the ledger of 2N routes: ledger rows
 *     read per gateway per minute at steady state against the changes, and a gateway's memory
 *     and CPU with the routes loaded (bench/scale/gateways.ts).
 */
import { pathToFileURL } from "node:url";
import { gatewaysSection } from "./scale/gateways.ts";
import { hubRestartSection } from "./scale/hub-restart.ts";
import { onboard } from "./scale/onboarding.ts";
import type { BenchSection } from "./types.ts";

function sitesFromArgs(): number {
  const i = process.argv.indexOf("--sites");
  const raw = i >= 0 ? process.argv[i + 1] : process.env.BENCH_SCALE_SITES;
  const n = Number(raw ?? 1000);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--sites ${raw} must be a positive integer`);
  return n;
}

/**
 * S1's registry allows 100 operations a minute: real time would take hours at 10,000 sites, so
 * its quota windows run faster (BENCH_SCALE_S1_TIME_SCALE); why ×50, the report's note says.
 */
const DEFAULT_S1_TIME_SCALE = 50;
const S1_TIME_SCALE = Number(process.env.BENCH_SCALE_S1_TIME_SCALE ?? DEFAULT_S1_TIME_SCALE);

export async function runBenchmark(): Promise<BenchSection> {
  const sites = sitesFromArgs();
  const only = (process.env.BENCH_SCALE_ONLY ?? "s1,s3,restart,gateways").split(",");
  const figures: BenchSection["figures"] = [];
  const notes: string[] = [];
  const sections: BenchSection[] = [];
  if (only.includes("s1")) {
    const s1 = await onboard({
      sites,
      sku: "S1",
      units: 1,
      timeScale: S1_TIME_SCALE,
      prefix: "s1-",
    });
    figures.push(...s1.figures);
    notes.push(...s1.notes);
    if (S1_TIME_SCALE === DEFAULT_S1_TIME_SCALE)
      notes.push(
        `S1's quota windows run ×${S1_TIME_SCALE} (BENCH_SCALE_S1_TIME_SCALE): in real time 10,000 sites take 3.3 hours. ×50 makes S1's registry allow 83 operations a second, as S3 does in real time; at ×60 (50 sites a second) single runs took 211-236 s against the 218.9 s target (211 s with this commit's 64 workers and bulk calls of 10, 220 s with 64 and 50), bound by what the whole simulation sustains on this machine's two cores (42-47 sites a second in those runs), with the pacing holding the registry class at 95 % of its rate.`,
      );
    await s1.close();
  }
  if (only.includes("s3") || only.includes("gateways")) {
    const s3 = await onboard({
      sites,
      sku: "S3",
      units: 1,
      timeScale: 1,
      prefix: "s3-",
      // A dedicated port for rdp and a TLS SNI route on the shared 443 for ssh: 2N routes on
      // N + 1 listening sockets (bench/scale/gateways.ts).
      siteBody: (siteId) => ({
        mappings: {
          rdp: { target: "10.0.0.5:3389" },
          ssh: {
            target: "10.0.0.5:22",
            public: { kind: "tls-sni", port: 443, hostname: `${siteId}.sites.example` },
          },
        },
      }),
    });
    figures.push(...s3.figures);
    notes.push(...s3.notes);
    try {
      if (only.includes("gateways")) sections.push(await gatewaysSection(s3));
    } finally {
      await s3.close();
    }
  }
  if (only.includes("restart")) sections.unshift(await hubRestartSection(sites));
  const section: BenchSection = {
    title: `Scale: ${sites} sites within IoT Hub's and Azure Relay's quotas`,
    figures: [
      ...figures,
      ...sections.flatMap((s) =>
        s.figures.map((f) => ({ ...f, metric: `${s.title.split(":")[0]}: ${f.metric}` })),
      ),
    ],
    notes: [...notes, ...sections.flatMap((s) => s.notes ?? [])],
  };
  return section;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
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
