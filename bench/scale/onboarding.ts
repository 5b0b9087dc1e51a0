/**
 * Onboarding N sites through the rollout's real HTTP API (cloud/functions/src/serve-local.ts in
 * its own process, the Functions handlers) against the quota-enforcing IoT Hub emulator, the
 * relay emulator and Azurite. The minimum time the quotas allow is computed from what the
 * rollout asked of the hub: for each throttled class, the operations beyond the bucket's initial
 * budget at the class's rate; the slowest class bounds the whole.
 */
import { randomBytes } from "node:crypto";
import { type Azurite, startAzurite } from "../../sim/azurite.ts";
import { type IotHubEmulator, startIotHubEmulator } from "../../sim/iothub-emulator/index.ts";
import { type HubSku, hubRates, type QuotaClass } from "../../sim/iothub-emulator/quotas.ts";
import type { BenchFigure } from "../types.ts";
import { type BenchChild, startBenchChild } from "./child.ts";
import { machineLoad, watchProc } from "./proc-usage.ts";
import { namespacesFor, type RelayNamespaces, startRelayNamespaces } from "./relay-namespaces.ts";

export const PORT_RANGE = { from: 10_000, to: 29_999 };
const PER_MINUTE: ReadonlySet<QuotaClass> = new Set(["registry", "query", "configurations"]);

interface PolledJob {
  state: string;
  total: number;
  counts: { succeeded: number };
  sites: Array<{ siteId: string; state: string; code?: string; reason?: string }>;
}

export interface OnboardingRun {
  figures: BenchFigure[];
  notes: string[];
  azurite: Azurite;
  /** The relay namespaces the rollout spread the sites over (one emulator process each). */
  relay: RelayNamespaces;
  hub: IotHubEmulator;
  rollout: { url: string; functionKey: string; child: BenchChild };
  siteIds: string[];
  close(): Promise<void>;
}

export interface OnboardingOptions {
  sites: number;
  sku: HubSku;
  units: number;
  /** Quota time scale (1 = real time). */
  timeScale: number;
  prefix: string;
  /** What each site is created with besides its id (default: the `default` profile). */
  siteBody?: (siteId: string) => Record<string, unknown>;
}

/** Minimum seconds the hub's quotas allow for the operations counted, and the class that binds. */
export function quotaMinimum(
  hub: IotHubEmulator,
  sku: HubSku,
  units: number,
  timeScale: number,
): { seconds: number; bound: QuotaClass | undefined; detail: string[] } {
  const rates = hubRates(sku, units);
  let seconds = 0;
  let bound: QuotaClass | undefined;
  const detail: string[] = [];
  for (const [cls, count] of Object.entries(hub.quotas.counts) as Array<[QuotaClass, { allowed: number }]>) {
    if (count.allowed === 0) continue;
    const rate = rates[cls] * timeScale;
    const capacity = Math.max(1, PER_MINUTE.has(cls) ? rates[cls] * 60 : rates[cls]);
    const s = Math.max(0, (count.allowed - capacity) / rate);
    detail.push(
      `${cls}: ${count.allowed} ops, (${count.allowed} − ${capacity.toFixed(0)}) / ${rate.toFixed(2)}/s = ${s.toFixed(1)} s`,
    );
    if (s > seconds) {
      seconds = s;
      bound = cls;
    }
  }
  return { seconds, bound, detail };
}

/** First and last allowed operation of each quota class (epoch ms), where the time went. */
type ClassSpan = Partial<Record<QuotaClass, { first: number; last: number }>>;

/**
 * Where the run's time went beyond the bound class's own span: before its first operation (the
 * job's submission and checks) and after its last (the sites' remaining steps).
 */
function timeline(span: ClassSpan, cls: QuotaClass | undefined, started: number, ended: number): string {
  const s = cls ? span[cls] : undefined;
  if (!cls || !s) return "";
  const f = (ms: number) => (ms / 1_000).toFixed(1);
  return ` Timeline of ${cls}: first operation ${f(s.first - started)} s after the job was submitted, last ${f(ended - s.last)} s before it was done (${f(s.last - s.first)} s between them).`;
}

export async function onboard(opts: OnboardingOptions): Promise<OnboardingRun> {
  const span: ClassSpan = {};
  const [azurite, relay, hub] = await Promise.all([
    startAzurite(),
    // As many namespaces as the rollout's placement fills for N sites (ADR 0025).
    // (and room for the few sites the gateways' steady state adds).
    startRelayNamespaces(namespacesFor(opts.sites + 16)),
    startIotHubEmulator({
      sku: opts.sku,
      units: opts.units,
      quotaTimeScale: opts.timeScale,
      workloadPort: false,
      onQuotaDecision: (cls, allowed, at) => {
        if (!allowed) return;
        const s = span[cls];
        if (s) s.last = at;
        else span[cls] = { first: at, last: at };
      },
    }),
  ]);
  const functionKey = randomBytes(16).toString("hex");
  const child = startBenchChild("cloud/functions/src/serve-local.ts", [], {
    IOTHUB_CONNECTION_STRING: hub.serviceConnectionString,
    IOTHUB_REST_PORT: String(hub.httpsPort),
    IOTHUB_CA_FILE: hub.caFile,
    LEDGER_CONNECTION_STRING: azurite.connectionString,
    RELAY_ENDPOINT: relay.urls[0],
    RELAY_NAMESPACES: relay.urls.join(","),
    RELAY_MANAGE_KEY_NAME: relay.manageKeyName,
    RELAY_MANAGE_KEY: relay.manageKey,
    ROLLOUT_RELAY_SEND_AUTH: "sas",
    RELAY_PORT_RANGES: `${PORT_RANGE.from}-${PORT_RANGE.to}`,
    SITE_PROFILES: JSON.stringify({
      default: { mappings: { rdp: { target: "10.0.0.5:3389" }, ssh: { target: "10.0.0.5:22" } } },
    }),
    ROLLOUT_FUNCTION_KEY: functionKey,
    // The rollout paces itself by the hub's published rates, at the emulator's time scale.
    IOTHUB_SKU: opts.sku,
    IOTHUB_UNITS: String(opts.units),
    IOTHUB_QUOTA_TIME_SCALE: String(opts.timeScale),
    RECONCILE_SCHEDULE: "0 */5 * * * *",
  });
  const close = async () => {
    await child.stop();
    await Promise.all([azurite.close(), relay.close(), hub.close()]);
  };
  try {
    const listening = await child.waitFor("listening", 120_000);
    const url = String(listening.url);
    const siteIds = Array.from(
      { length: opts.sites },
      (_, i) => `${opts.prefix}${String(i).padStart(5, "0")}`,
    );
    process.stderr.write(
      `scale: onboarding ${opts.sites} sites on ${opts.sku} (time scale ${opts.timeScale})\n`,
    );
    const watch = watchProc(child.pid);
    const loadBefore = machineLoad();
    // One onboarding job, as `relay-fleet sites add --from-file` submits it (ADR 0024): the
    // rollout's queue with its bulk device creation and pacing, its progress polled every second
    // with ?sites=unfinished (the counts whole, a small answer at any size).
    const headers = { "x-functions-key": functionKey, "content-type": "application/json" };
    const started = Date.now();
    const submitted = await fetch(`${url}/api/onboarding-jobs`, {
      method: "POST",
      headers,
      body: JSON.stringify({ sites: siteIds.map((siteId) => ({ ...opts.siteBody?.(siteId), siteId })) }),
      signal: AbortSignal.timeout(120_000),
    });
    const submitText = await submitted.text();
    if (submitted.status !== 202)
      throw new Error(`job refused: ${submitted.status} ${submitText.slice(0, 300)}`);
    const jobId = String((JSON.parse(submitText) as { id: unknown }).id);
    const polls = { count: 0, ms: 0, maxBytes: 0 };
    let job: PolledJob;
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const t0 = Date.now();
      const res = await fetch(`${url}/api/onboarding-jobs/${jobId}?sites=unfinished`, {
        headers,
        signal: AbortSignal.timeout(60_000),
      });
      const text = await res.text();
      polls.count++;
      polls.ms += Date.now() - t0;
      polls.maxBytes = Math.max(polls.maxBytes, text.length);
      if (res.status !== 200) throw new Error(`job poll: ${res.status} ${text.slice(0, 300)}`);
      job = JSON.parse(text) as PolledJob;
      if (job.state === "done") break;
    }
    const failures = job.total - job.counts.succeeded;
    const failed = job.sites.find((x) => x.state !== "succeeded");
    const firstError = failed ? `${failed.siteId}: ${failed.code} ${failed.reason ?? ""}`.slice(0, 300) : "";
    const ended = Date.now();
    const seconds = (ended - started) / 1_000;
    const usage = watch.stop();
    const min = quotaMinimum(hub, opts.sku, opts.units, opts.timeScale);
    const scaled = opts.timeScale === 1 ? "" : ` (quota windows time-scaled ×${opts.timeScale})`;
    const label = `${opts.sku} ×${opts.units}${scaled}`;
    const figures: BenchFigure[] = [
      {
        metric: `onboard ${opts.sites} sites on ${label}`,
        value: Number(seconds.toFixed(1)),
        unit: "s",
        baselines: [{ name: "quotas' minimum", value: Number(min.seconds.toFixed(1)) }],
        target:
          min.seconds > 0
            ? `<= minimum + 10 % (${(min.seconds * 1.1).toFixed(1)} s), no failed site`
            : "no failed site (the quotas do not bind at this size: each class within its initial budget)",
        met: failures === 0 && (min.seconds === 0 || seconds <= min.seconds * 1.1),
      },
      { metric: `failed sites (${label})`, value: failures, unit: "count", target: "0", met: failures === 0 },
      {
        metric: `rollout CPU during onboarding (${label})`,
        value: Number(usage.meanCpuPercent.toFixed(0)),
        unit: "% of a core",
      },
      {
        metric: `rollout peak RSS during onboarding (${label})`,
        value: Number(usage.peakRssMb.toFixed(0)),
        unit: "MiB",
      },
    ];
    const notes = [
      `${label}: ${relay.urls.length} relay namespace(s) configured (RELAY_NAMESPACES; one emulator process each, as many as ${opts.sites} sites fill at ADR 0025's 18 connections a site to 80 % of 5,000); one onboarding job (POST /api/onboarding-jobs; ${polls.count} progress polls, mean ${(polls.ms / Math.max(1, polls.count)).toFixed(0)} ms, largest answer ${(polls.maxBytes / 1024).toFixed(0)} KiB); minimum from the hub operations the rollout made (bucket starts full): ${min.detail.join("; ")}; bound by ${min.bound ?? "none"}. Throttled answers: ${
        Object.entries(hub.quotas.counts)
          .filter(([, c]) => c.throttled > 0)
          .map(([k, c]) => `${k} ${c.throttled}`)
          .join(", ") || "none"
      }.${timeline(span, min.bound, started, ended)} Machine before the run: ${loadBefore}; after: ${machineLoad()}.`,
      ...(firstError ? [`first failure (${label}): ${firstError}`] : []),
    ];
    return { figures, notes, azurite, relay, hub, rollout: { url, functionKey, child }, siteIds, close };
  } catch (err) {
    await close();
    throw err;
  }
}
