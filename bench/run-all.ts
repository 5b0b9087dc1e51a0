/**
 * `npm run bench`: runs every `bench/*.bench.ts` in one go, one after another (they compete for
 * the same two cores otherwise), and writes `bench/report.md` and `bench/report.json` with the
 * machine and commit they ran on. `npm run bench -- scale --sites 10000` runs the scale model at
 * 10,000 sites (bench/scale.bench.ts; the default is 1,000). A benchmark is not a test: nothing here fails on a slow machine;
 * a benchmark that throws is reported as such and the others still run.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { BenchFigure, BenchSection } from "./types.ts";

const benchDir = dirname(fileURLToPath(import.meta.url));

interface BenchModule {
  runBenchmark(): Promise<BenchSection>;
}

function commitOf(): string {
  try {
    return execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: benchDir, encoding: "utf8" }).trim();
  } catch {
    return "unknown";
  }
}

function formatValue(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  if (Math.abs(value) >= 100) return value.toFixed(0);
  if (Math.abs(value) >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

function figureRow(f: BenchFigure): string {
  const baselines = (f.baselines ?? []).map((b) => `${b.name}: ${formatValue(b.value)}`).join("; ");
  const met = f.met === undefined ? "" : f.met ? "yes" : "**no**";
  return `| ${f.metric} | ${formatValue(f.value)} ${f.unit} | ${baselines} | ${f.target ?? ""} | ${met} |`;
}

export function renderReport(sections: BenchSection[], machine: Record<string, string>): string {
  const lines = ["# Relay Fleet benchmark report", ""];
  for (const [k, v] of Object.entries(machine)) lines.push(`- ${k}: ${v}`);
  for (const section of sections) {
    lines.push(
      "",
      `## ${section.title}`,
      "",
      "| metric | value | baselines (same run) | target | met |",
      "|---|---|---|---|---|",
    );
    for (const f of section.figures) lines.push(figureRow(f));
    for (const note of section.notes ?? []) lines.push("", `- ${note}`);
  }
  return `${lines.join("\n")}\n`;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  // `--sites N` sizes the scale benchmark (bench/scale.bench.ts); the other words pick benchmarks.
  const sitesAt = args.indexOf("--sites");
  if (sitesAt >= 0) {
    process.env.BENCH_SCALE_SITES = args[sitesAt + 1] ?? "";
    args.splice(sitesAt, 2);
  }
  const only = args;
  const files = readdirSync(benchDir)
    .filter((f) => f.endsWith(".bench.ts"))
    .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
    .sort();
  const sections: BenchSection[] = [];
  for (const file of files) {
    process.stderr.write(`bench: running ${file}\n`);
    const started = Date.now();
    try {
      const mod = (await import(pathToFileURL(join(benchDir, file)).href)) as BenchModule;
      const section = await mod.runBenchmark();
      sections.push(section);
      process.stderr.write(`bench: ${file} done in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    } catch (err) {
      sections.push({
        title: file,
        figures: [],
        notes: [`failed: ${err instanceof Error ? err.message : String(err)}`],
      });
      process.stderr.write(`bench: ${file} failed: ${String(err)}\n`);
    }
  }
  // A run of some benchmarks only (`npm run bench -- real-clients`) keeps the other sections of
  // the last report, each marked with the run it came from, instead of dropping them.
  if (only.length > 0) {
    try {
      const previous = JSON.parse(readFileSync(join(benchDir, "report.json"), "utf8")) as {
        machine?: Record<string, string>;
        sections?: BenchSection[];
      };
      const ran = new Set(sections.map((s) => s.title));
      const from = `kept from an earlier run (commit ${previous.machine?.commit ?? "unknown"}, ${previous.machine?.date ?? "unknown date"}); not re-run this time`;
      for (const old of previous.sections ?? []) {
        if (ran.has(old.title)) continue;
        // A section kept once already names the run it came from; only a fresh one gets this run's.
        const notes = old.notes ?? [];
        const kept = notes.some((n) => n.startsWith("kept from an earlier run"));
        sections.push({ ...old, notes: kept ? notes : [from, ...notes] });
      }
    } catch {
      // no earlier report: only this run's sections
    }
  }
  const cpu = cpus()[0];
  const machine = {
    date: new Date().toISOString(),
    commit: commitOf(),
    node: process.version,
    cpu: `${cpus().length} x ${cpu?.model ?? "unknown"}`,
    memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
  };
  writeFileSync(join(benchDir, "report.json"), `${JSON.stringify({ machine, sections }, null, 2)}\n`);
  writeFileSync(join(benchDir, "report.md"), renderReport(sections, machine));
  process.stdout.write(renderReport(sections, machine));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  await main();
  // Benchmarks may leave keep-alive agents behind; the report is written, so leave now.
  process.exit(0);
}
