/**
 * Onboarding many sites as a queue (issue 18, ADR 0024): a job takes a list of site bodies, is
 * checked whole before anything is queued (a bad row refuses the job, nothing is written), then
 * works through its sites in batches:
 *
 * - one bulk registry call creates the devices of up to 100 queued sites (IoT Hub's bulk
 *   `POST /devices`), so the onboarding that follows skips each device's read and its module's;
 *   one take of the ledger's counter reserves the reconnect phase ordinals of the devices it
 *   created (ADR 0031), so a batch costs two storage operations for them, not two a site;
 * - the sites are onboarded a few at a time (`concurrency`); every hub call goes through the
 *   rollout's hub pacing (bounded in flight, 429 and `Retry-After` honoured);
 * - a site that fails for a reason that passes (IoT Hub still throttling after the pacing's
 *   wait, a backend half way) goes back in the queue with the reason and is retried later:
 *   every onboarding step is idempotent, so a retry finishes what the last attempt began;
 * - a site the rollout refuses (4xx: another site under that id, a port taken) fails with its
 *   error, and the devices this job created for it are deleted again, so nothing of it remains.
 *
 * A job's progress (each site's state and why it waits) is what `GET /api/onboarding-jobs/{id}`
 * answers and `relay-fleet sites add --from-file` polls. Jobs live in the rollout instance that
 * runs them (see ADR 0024 for what that means on Azure Functions).
 */
import { randomUUID } from "node:crypto";
import { z } from "zod";
import { errorMessage } from "../../../../lib/errors.ts";
import { HUB_PHASE_COUNTER, type OrdinalCounters } from "../../../../lib/ledger/index.ts";
import type { ApplyHints } from "./apply.ts";
import type { RolloutDeps } from "./context.ts";
import { ValidationError } from "./errors.ts";
import { MAX_BULK_DEVICES } from "./hub.ts";
import type { OnboardingQueueOptions } from "./onboarding-options.ts";
import { type CreateSiteBody, createSiteBodySchema } from "./schemas.ts";
import type { SiteView } from "./site-view.ts";

/** Most sites one job may carry (the scale the rollout is sized for, ADR 0024). */
export const MAX_JOB_SITES = 10_000;

export const onboardingJobBodySchema = z
  .object({ sites: z.array(z.unknown()).min(1, "name at least one site").max(MAX_JOB_SITES) })
  .strict();

export type JobSiteState = "queued" | "running" | "succeeded" | "failed";

/** Which sites a job's progress lists. */
export const JOB_SITES_VIEWS = ["all", "unfinished"] as const;
export type JobSitesView = (typeof JOB_SITES_VIEWS)[number];

export interface JobSite {
  siteId: string;
  state: JobSiteState;
  attempts: number;
  /** `created` (new site) or `unchanged` (it existed with the same settings), once succeeded. */
  outcome?: "created" | "unchanged";
  /** Why a queued site waits (its last attempt's error), or why a failed one failed. */
  reason?: string;
  code?: string;
  /** When a queued site is retried next (ISO). */
  retryAt?: string;
  publicPorts?: number[];
}

export interface OnboardingJob {
  id: string;
  state: "running" | "done";
  createdAt: string;
  updatedAt: string;
  total: number;
  counts: Record<JobSiteState, number>;
  sites: JobSite[];
}

export interface OnboardingQueue {
  /** Checks the job whole (400 with each bad row's error, nothing queued) and starts it. */
  submit(body: unknown): OnboardingJob;
  /**
   * The job's progress; `sites: "unfinished"` lists only the sites not yet succeeded (the counts
   * stay whole), a small answer to poll while a job of thousands of sites runs.
   */
  get(jobId: string, options?: { sites?: JobSitesView }): OnboardingJob | undefined;
  /** Resolves when the job has finished (tests, the CLI's direct mode). */
  settled(jobId: string): Promise<OnboardingJob | undefined>;
}

interface Entry {
  body: CreateSiteBody;
  site: JobSite;
  devices: string[];
  notBefore: number;
  /** Its devices are created (or it is a retry) and it waits for a worker. */
  prepared?: boolean;
}

/** Wakes every waiter at once (`all`), or a waiter after `ms` (`next(ms)`). */
class Wakeup {
  private waiters: Array<() => void> = [];

  next(ms?: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = ms === undefined ? undefined : setTimeout(resolve, ms);
      this.waiters.push(() => {
        if (timer) clearTimeout(timer);
        resolve();
      });
    });
  }

  all(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

function snapshot(job: OnboardingJob, view: JobSitesView = "all"): OnboardingJob {
  const { sites, ...rest } = job;
  const listed = view === "all" ? sites : sites.filter((s) => s.state !== "succeeded");
  return { ...structuredClone(rest), sites: structuredClone(listed) };
}

/** A failure that passes (retried later) rather than a refusal (final). */
function passing(err: unknown): boolean {
  const status = (err as { status?: unknown }).status;
  return typeof status !== "number" || status >= 500 || status === 429;
}

/**
 * What the queue uses of the rollout (service.ts's Rollout), by shape: the rollout creates the
 * queue, so the queue must not import it back.
 */
export interface OnboardingRollout {
  readonly deps: Pick<RolloutDeps, "logger" | "hub"> & { readonly ledger?: OrdinalCounters };
  specFromProfile(siteId: string, deviceIds: string[], profile?: string): unknown;
  createSite(body: unknown, hints?: ApplyHints): Promise<{ created: boolean; site: SiteView }>;
}

export function createOnboardingQueue(
  rollout: OnboardingRollout,
  options: OnboardingQueueOptions = {},
): OnboardingQueue {
  const concurrency = Math.max(1, options.concurrency ?? 64);
  const batchSize = Math.min(MAX_BULK_DEVICES, Math.max(1, options.batchSize ?? MAX_BULK_DEVICES));
  const maxAttempts = Math.max(1, options.maxAttempts ?? 5);
  const retryDelayMs = options.retryDelayMs ?? 5_000;
  const keepJobs = options.keepJobs ?? 50;
  const jobs = new Map<string, { job: OnboardingJob; done: Promise<void> }>();
  const log = rollout.deps.logger;

  function validate(body: unknown): CreateSiteBody[] {
    const outer = onboardingJobBodySchema.safeParse(body);
    if (!outer.success) throw new ValidationError("onboarding job", outer.error);
    const issues: Array<{ path: string; message: string }> = [];
    const out: CreateSiteBody[] = [];
    const seenSites = new Map<string, number>();
    const seenDevices = new Map<string, number>();
    outer.data.sites.forEach((raw, i) => {
      const parsed = createSiteBodySchema.safeParse(raw);
      if (!parsed.success) {
        for (const issue of parsed.error.issues)
          issues.push({ path: [`sites[${i}]`, ...issue.path].join("."), message: issue.message });
        return;
      }
      const b = parsed.data;
      const other = seenSites.get(b.siteId);
      if (other !== undefined) {
        issues.push({ path: `sites[${i}].siteId`, message: `site ${b.siteId} is also row ${other + 1}` });
        return;
      }
      seenSites.set(b.siteId, i);
      for (const d of b.deviceIds ?? [b.deviceId ?? b.siteId]) {
        const owner = seenDevices.get(d);
        if (owner !== undefined) {
          issues.push({ path: `sites[${i}].deviceId`, message: `device ${d} is also in row ${owner + 1}` });
          return;
        }
        seenDevices.set(d, i);
      }
      try {
        // An unknown profile is a bad row too, found before anything is queued.
        if (!b.mappings) rollout.specFromProfile(b.siteId, [], b.profile);
      } catch (err) {
        issues.push({ path: `sites[${i}].profile`, message: errorMessage(err) });
        return;
      }
      out.push(b);
    });
    if (issues.length > 0)
      throw new ValidationError(`onboarding job (${issues.length} bad rows; nothing queued)`, issues);
    return out;
  }

  function recount(job: OnboardingJob): void {
    const counts: Record<JobSiteState, number> = { queued: 0, running: 0, succeeded: 0, failed: 0 };
    for (const s of job.sites) counts[s.state]++;
    job.counts = counts;
    job.updatedAt = new Date().toISOString();
  }

  /** Moves a site to `state`, keeping the job's counts (no pass over every site). */
  function setState(job: OnboardingJob, site: JobSite, state: JobSiteState): void {
    job.counts[site.state]--;
    site.state = state;
    job.counts[state]++;
    job.updatedAt = new Date().toISOString();
  }

  async function onboard(
    job: OnboardingJob,
    entry: Entry,
    created: ReadonlySet<string>,
    ordinals: ReadonlyMap<string, number>,
  ): Promise<void> {
    const { site } = entry;
    site.attempts++;
    setState(job, site, "running");
    try {
      // On its first attempt, the devices this job just created for the site have nothing
      // written on them yet; a retry reads them, since the last attempt may have written.
      const untouched = new Set(site.attempts === 1 ? entry.devices.filter((d) => created.has(d)) : []);
      const result = await rollout.createSite(entry.body, { newDevices: created, untouched, ordinals });
      setState(job, site, "succeeded");
      site.outcome = result.created ? "created" : "unchanged";
      site.publicPorts = result.site.publicPorts;
      delete site.reason;
      delete site.code;
      delete site.retryAt;
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      site.code = typeof code === "string" ? code : "RF_ERR_ROLLOUT_INTERNAL";
      site.reason = errorMessage(err);
      if (passing(err) && site.attempts < maxAttempts) {
        const delay = retryDelayMs * 2 ** (site.attempts - 1);
        entry.notBefore = Date.now() + delay;
        setState(job, site, "queued");
        site.retryAt = new Date(entry.notBefore).toISOString();
        return;
      }
      setState(job, site, "failed");
      delete site.retryAt;
      // Refused: the devices this job created for the site go again (nothing of it remains).
      const ours = entry.devices.filter((d) => created.has(d));
      for (const d of ours) {
        await rollout.deps.hub.deleteDevice(d).catch((e: unknown) => {
          log?.error(
            { siteId: site.siteId, deviceId: d, err: errorMessage(e) },
            "removing a refused site's device failed",
          );
        });
      }
    }
  }

  /**
   * Reserves one block of reconnect phase ordinals for the devices a bulk call created (in the
   * batch's order, so a job's sites take consecutive ordinals). A device left without (storage
   * failed here) takes its own when its site writes its twin.
   */
  async function reserveOrdinals(batch: Entry[], created: ReadonlySet<string>, into: Map<string, number>) {
    const ids = batch.flatMap((e) => e.devices).filter((d) => created.has(d) && !into.has(d));
    if (ids.length === 0 || !rollout.deps.ledger) return;
    try {
      const first = await rollout.deps.ledger.takeOrdinals(HUB_PHASE_COUNTER, ids.length);
      for (const [i, d] of ids.entries()) into.set(d, first + i);
    } catch (err) {
      log?.warn({ err: errorMessage(err), devices: ids.length }, "reserving reconnect phases failed");
    }
  }

  /** Creates the devices of `batch` in one bulk call; the ids it created. */
  async function bulkCreate(batch: Entry[]): Promise<Set<string>> {
    const ids = batch.filter((e) => e.site.attempts === 0).flatMap((e) => e.devices);
    const created = new Set<string>();
    if (ids.length === 0) return created;
    try {
      for (let i = 0; i < ids.length; i += MAX_BULK_DEVICES) {
        const result = await rollout.deps.hub.createEdgeDevices(ids.slice(i, i + MAX_BULK_DEVICES));
        for (const d of result.created) created.add(d);
        for (const f of result.failed)
          log?.warn(
            { deviceId: f.deviceId, err: f.message },
            "bulk create refused a device; its site creates it itself",
          );
      }
    } catch (err) {
      // The sites then create their devices one by one, as a single onboarding does.
      log?.warn({ err: errorMessage(err), devices: ids.length }, "bulk device create failed");
    }
    return created;
  }

  /**
   * Works through the job as a pipeline: a feeder bulk-creates the devices of the next batch of
   * queued sites while `concurrency` workers onboard the sites already prepared, so the hub's
   * registry budget is spent without a pause between batches. What bounds the pace is the hub
   * pacing (hub-pacing.ts), not the batches.
   */
  async function run(job: OnboardingJob, entries: Entry[]): Promise<void> {
    const remembered = new Set<string>();
    const ordinals = new Map<string, number>();
    const prepared: Entry[] = [];
    const wake = new Wakeup();
    const finished = () => job.counts.succeeded + job.counts.failed === job.total;
    let feederError: unknown;
    // Sites prepared ahead: enough that the workers never wait for the next bulk call.
    const ahead = Math.max(batchSize, concurrency);

    // Sites a passing failure put back in the queue (the workers add them).
    const retries = new Set<Entry>();
    const feeder = async () => {
      let from = 0; // every entry before it has been prepared once
      while (!finished()) {
        if (prepared.length >= ahead) {
          await wake.next();
          continue;
        }
        const now = Date.now();
        const batch: Entry[] = [];
        let devices = 0;
        const take = (e: Entry) => {
          if (batch.length > 0 && devices + e.devices.length > batchSize) return false;
          batch.push(e);
          devices += e.devices.length;
          return true;
        };
        // Retries whose time has come first, then sites never tried, in file order.
        for (const e of retries) {
          if (e.site.state !== "queued" || e.prepared) {
            retries.delete(e);
            continue;
          }
          if (e.notBefore <= now && !take(e)) break;
        }
        while (from < entries.length) {
          const e = entries[from] as Entry;
          if (e.site.state !== "queued" || e.prepared) {
            from++;
            continue;
          }
          if (!take(e)) break;
          from++;
        }
        if (batch.length === 0) {
          // Nothing ready: wait for a worker to finish a site or the next retry's time.
          const waiting = [...retries].filter((e) => e.site.state === "queued");
          const next = waiting.length > 0 ? Math.min(...waiting.map((e) => e.notBefore)) : undefined;
          await wake.next(next === undefined ? undefined : Math.max(10, next - now));
          continue;
        }
        for (const e of batch) e.prepared = true;
        const created = await bulkCreate(batch);
        for (const d of created) remembered.add(d);
        await reserveOrdinals(batch, created, ordinals);
        prepared.push(...batch);
        wake.all();
      }
    };

    const worker = async () => {
      while (!finished() && feederError === undefined) {
        const e = prepared.shift();
        if (!e) {
          await wake.next();
          continue;
        }
        e.prepared = false;
        const onboarding = onboard(job, e, remembered, ordinals); // the site is running from here
        wake.all(); // the feeder may top up
        await onboarding;
        if (e.site.state === "queued") retries.add(e);
        wake.all();
      }
    };

    await Promise.all([
      feeder().catch((err: unknown) => {
        feederError = err;
        wake.all();
      }),
      ...Array.from({ length: Math.min(concurrency, entries.length) }, worker),
    ]);
    if (feederError !== undefined) throw feederError;
    job.state = "done";
    job.updatedAt = new Date().toISOString();
    log?.info({ jobId: job.id, ...job.counts }, "onboarding job finished");
  }

  function forget(): void {
    const finished = [...jobs.entries()].filter(([, j]) => j.job.state === "done");
    for (const [id] of finished.slice(0, Math.max(0, finished.length - keepJobs))) jobs.delete(id);
  }

  return {
    submit(body) {
      const bodies = validate(body);
      const now = new Date().toISOString();
      const entries: Entry[] = bodies.map((b) => ({
        body: b,
        devices: b.deviceIds ?? [b.deviceId ?? b.siteId],
        notBefore: 0,
        site: { siteId: b.siteId, state: "queued", attempts: 0 },
      }));
      const job: OnboardingJob = {
        id: randomUUID(),
        state: "running",
        createdAt: now,
        updatedAt: now,
        total: entries.length,
        counts: { queued: entries.length, running: 0, succeeded: 0, failed: 0 },
        sites: entries.map((e) => e.site),
      };
      forget();
      const done = run(job, entries).catch((err: unknown) => {
        // A bug, not a site's failure: the job ends and says so per site.
        log?.error({ jobId: job.id, err: errorMessage(err) }, "onboarding job failed");
        for (const s of job.sites) {
          if (s.state === "succeeded" || s.state === "failed") continue;
          s.state = "failed";
          s.code = "RF_ERR_ROLLOUT_INTERNAL";
          s.reason =
            "The onboarding job stopped; see the rollout's log. Submitting the file again finishes it.";
        }
        job.state = "done";
        recount(job);
      });
      jobs.set(job.id, { job, done });
      log?.info({ jobId: job.id, sites: job.total }, "onboarding job queued");
      return snapshot(job);
    },
    get(jobId, options = {}) {
      const j = jobs.get(jobId);
      return j ? snapshot(j.job, options.sites) : undefined;
    },
    async settled(jobId) {
      const j = jobs.get(jobId);
      if (!j) return undefined;
      await j.done;
      return snapshot(j.job);
    },
  };
}
