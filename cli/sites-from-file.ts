/**
 * `relay-fleet sites add --from-file sites.csv`: many sites as one onboarding job (ADR 0024).
 * The file is checked whole first: a bad row is reported with its line and reason and nothing
 * is submitted. The job then runs in the rollout (bulk device creation, IoT Hub pacing, retries);
 * the CLI polls it, shows progress on stderr and ends with a summary of what succeeded, what
 * failed and why, and what is still queued and why.
 *
 * The CSV: a header row naming the columns, then one site a row. `siteId` is required;
 * `deviceId` (several devices of a redundant site separated by `;`, default the site id) and
 * `profile` (default the rollout's default profile) are optional. Blank lines and lines starting
 * with `#` are skipped; a field may be quoted ("a,b").
 */
import { readFileSync } from "node:fs";
import { z } from "zod";
import { createSiteBodySchema } from "../cloud/functions/src/rollout/schemas.ts";
import { errorMessage, RelayFleetError } from "../lib/errors.ts";
import type { FleetClient } from "./client.ts";
import { table } from "./format.ts";

const COLUMNS = ["siteId", "deviceId", "profile"] as const;

/** One CSV row as text fields; empty fields are absent. */
const csvRowSchema = z
  .object({
    siteId: z.string().min(1, "siteId is required"),
    deviceId: z.string().optional(),
    profile: z.string().optional(),
  })
  .strict();

/** Splits one CSV line (RFC 4180 quoting within the line: "" is a quote). */
export function splitCsvLine(line: string): string[] {
  const out: string[] = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"' && field === "") quoted = true;
    else if (ch === ",") {
      out.push(field);
      field = "";
    } else field += ch;
  }
  if (quoted) throw new Error("a quoted field is not closed");
  out.push(field);
  return out.map((f) => f.trim());
}

export interface CsvProblem {
  line: number;
  message: string;
}

/**
 * The site bodies of a CSV text, or every problem found (line numbers from 1). Each row is
 * checked with the API's own site schema, so what passes here the API accepts.
 */
export function parseSitesCsv(text: string): { sites: unknown[]; problems: CsvProblem[] } {
  const lines = text.split(/\r?\n/);
  const problems: CsvProblem[] = [];
  const sites: unknown[] = [];
  let header: string[] | undefined;
  const seen = new Map<string, number>();
  lines.forEach((raw, index) => {
    const line = index + 1;
    if (raw.trim() === "" || raw.trimStart().startsWith("#")) return;
    let fields: string[];
    try {
      fields = splitCsvLine(raw);
    } catch (err) {
      problems.push({ line, message: errorMessage(err) });
      return;
    }
    if (!header) {
      header = fields;
      const unknown = fields.filter((f) => !(COLUMNS as readonly string[]).includes(f));
      if (unknown.length > 0 || !fields.includes("siteId"))
        problems.push({
          line,
          message: `the header names the columns (${COLUMNS.join(", ")}; siteId required)${unknown.length ? `, not ${unknown.join(", ")}` : ""}`,
        });
      return;
    }
    if (fields.length !== header.length) {
      problems.push({ line, message: `${fields.length} fields, the header has ${header.length}` });
      return;
    }
    const record: Record<string, string> = {};
    header.forEach((name, i) => {
      if (fields[i] !== "") record[name] = fields[i] as string;
    });
    const row = csvRowSchema.safeParse(record);
    if (!row.success) {
      problems.push({ line, message: row.error.issues.map((i) => i.message).join("; ") });
      return;
    }
    const devices = row.data.deviceId?.split(";").map((d) => d.trim());
    const body = {
      siteId: row.data.siteId,
      ...(devices && devices.length === 1 ? { deviceId: devices[0] } : {}),
      ...(devices && devices.length > 1 ? { deviceIds: devices } : {}),
      ...(row.data.profile ? { profile: row.data.profile } : {}),
    };
    const site = createSiteBodySchema.safeParse(body);
    if (!site.success) {
      const i = site.error.issues[0];
      problems.push({ line, message: `${i?.path.join(".") || "row"}: ${i?.message ?? "invalid"}` });
      return;
    }
    const first = seen.get(row.data.siteId);
    if (first !== undefined) {
      problems.push({ line, message: `site ${row.data.siteId} is also on line ${first}` });
      return;
    }
    seen.set(row.data.siteId, line);
    sites.push(body);
  });
  if (!header) problems.push({ line: 1, message: "the file is empty (a header row and one site a row)" });
  else if (sites.length === 0 && problems.length === 0)
    problems.push({ line: 2, message: "no sites in the file" });
  return { sites, problems };
}

interface JobSite {
  siteId: string;
  state: "queued" | "running" | "succeeded" | "failed";
  attempts: number;
  outcome?: string;
  reason?: string;
  code?: string;
  retryAt?: string;
  publicPorts?: number[];
}

interface Job {
  id: string;
  state: "running" | "done";
  total: number;
  counts: Record<JobSite["state"], number>;
  sites: JobSite[];
}

const progressLine = (job: Job) =>
  `onboarding ${job.total} sites: ${job.counts.succeeded} succeeded, ${job.counts.failed} failed, ${job.counts.running} running, ${job.counts.queued} queued`;

/** The job's summary: counts, then every site that failed or still waits, with why. */
export function jobSummary(job: Job): string {
  const lines = [`job ${job.id} (${job.state}): ${progressLine(job).replace(/^onboarding /, "")}`];
  const open = job.sites.filter((s) => s.state !== "succeeded");
  if (open.length > 0)
    lines.push(
      table(
        ["SITE", "STATE", "ATTEMPTS", "WHY"],
        open.map((s) => [
          { text: s.siteId },
          { text: s.state },
          { text: String(s.attempts) },
          {
            text: `${s.code ? `${s.code}: ` : ""}${s.reason ?? "waiting for its turn"}${s.retryAt ? ` (next try ${s.retryAt})` : ""}`,
          },
        ]),
      ),
    );
  return lines.join("\n");
}

export interface FromFileOptions {
  wait: boolean;
  json?: boolean;
  /** Poll interval (default 1 s). */
  pollMs?: number;
  /** Progress lines (default stderr). */
  progress?: (line: string) => void;
}

/** Checks the file, submits it as one job and (unless told not to) follows it to the end. */
export async function addSitesFromFile(
  client: FleetClient,
  path: string,
  options: FromFileOptions,
): Promise<void> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new RelayFleetError("RF_ERR_CLI_BAD_CSV", `Cannot read ${path}: ${errorMessage(err)}`);
  }
  const { sites, problems } = parseSitesCsv(text);
  if (problems.length > 0) {
    const shown = problems.slice(0, 20).map((p) => `line ${p.line}: ${p.message}`);
    if (problems.length > 20) shown.push(`… and ${problems.length - 20} more`);
    throw new RelayFleetError(
      "RF_ERR_CLI_BAD_CSV",
      `${path} has ${problems.length} bad row${problems.length === 1 ? "" : "s"}; nothing was submitted.\n${shown.join("\n")}`,
    );
  }
  const progress = options.progress ?? ((line: string) => console.error(line));
  let job = (await client.submitOnboarding({ sites })) as Job;
  if (!options.wait) {
    console.log(
      options.json
        ? JSON.stringify(job, null, 2)
        : `queued job ${job.id} (${job.total} sites); follow it with: relay-fleet sites job ${job.id}`,
    );
    return;
  }
  let last = "";
  while (job.state !== "done") {
    const line = progressLine(job);
    if (line !== last) progress(line);
    last = line;
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 1_000));
    job = (await client.onboardingJob(job.id)) as Job;
  }
  console.log(options.json ? JSON.stringify(job, null, 2) : jobSummary(job));
  if (job.counts.failed > 0)
    throw new RelayFleetError(
      "RF_ERR_CLI_SITES_FAILED",
      `${job.counts.failed} of ${job.total} sites failed (each with its reason above); the others are onboarded. Fix them and submit the file again: sites already onboarded are left as they are.`,
    );
}

/** `relay-fleet sites job <jobId>`: a job's summary (or its JSON). */
export async function showJob(client: FleetClient, jobId: string, json: boolean): Promise<void> {
  const job = (await client.onboardingJob(jobId)) as Job;
  console.log(json ? JSON.stringify(job, null, 2) : jobSummary(job));
}
