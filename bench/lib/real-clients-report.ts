/**
 * The report section of bench/real-clients.bench.ts: the full path's figures against the socat
 * chains and the direct path, each with its target and whether it was met.
 */
import type { BenchFigure, BenchSection } from "../types.ts";
import { type PathFigures, PG_SECONDS, SECONDS } from "./real-client-runs.ts";

function ratio(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined || b === 0 ? undefined : a / b;
}

/** The section for bench/report.md; `notes` gets a line for each row not measured. */
export function report(results: Map<string, PathFigures>, notes: string[]): BenchSection {
  const full = results.get("Relay Fleet full path") ?? {};
  const tls = results.get("socat, 3 hops, TLS");
  const plain = results.get("socat, 3 hops, plaintext");
  const direct = results.get("direct");
  const baselines = (pick: (f: PathFigures) => number | undefined) =>
    [...results.entries()]
      .filter(([name]) => name !== "Relay Fleet full path")
      .flatMap(([name, f]) => {
        const v = pick(f);
        return v === undefined ? [] : [{ name, value: v }];
      });
  const figures: BenchFigure[] = [];
  const push = (
    metric: string,
    value: number | undefined,
    unit: string,
    pick: (f: PathFigures) => number | undefined,
    target?: {
      text: string;
      ratio?: number;
      met: (v: number, r: number | undefined) => boolean;
      vs?: string;
    },
  ) => {
    if (value === undefined) {
      notes.push(`${metric}: not measured`);
      return;
    }
    const extra = target?.ratio !== undefined ? [{ name: `ratio to ${target.vs}`, value: target.ratio }] : [];
    figures.push({
      metric,
      value,
      unit,
      baselines: [...baselines(pick), ...extra],
      ...(target ? { target: target.text, met: target.met(value, target.ratio) } : {}),
    });
  };
  const bulkRatio = ratio(full.iperfGbps, tls?.iperfGbps);
  push("iperf3 one stream, full path", full.iperfGbps, "Gbit/s", (f) => f.iperfGbps, {
    text: ">= 1.0x the TLS socat chain",
    ratio: bulkRatio,
    vs: "TLS socat",
    met: (_v, r) => r !== undefined && r >= 1,
  });
  const cpuRatio = ratio(full.cpuPerGiB, tls?.cpuPerGiB);
  push(
    "CPU s/GiB at the two ends (gateway + module; socat hop 1 + hop 3)",
    full.cpuPerGiB,
    "s/GiB",
    (f) => f.cpuPerGiB,
    {
      text: "<= 1.0x socat's two TLS ends",
      ratio: cpuRatio,
      vs: "TLS socat",
      met: (_v, r) => r !== undefined && r <= 1,
    },
  );
  push(
    "HTTP, new connection per request (wrk, 16 at once, Connection: close, 1 KiB)",
    full.closeRate,
    "req/s",
    (f) => f.closeRate,
    { text: ">= 2500 req/s", met: (v) => v >= 2500 },
  );
  push("connect-to-first-byte p99, new connections, 16 at once", full.closeP99, "ms", (f) => f.closeP99, {
    text: "<= 20 ms",
    met: (v) => v <= 20,
  });
  push("connect-to-first-byte p50, new connections, 16 at once", full.closeP50, "ms", (f) => f.closeP50);
  const kaRatio = ratio(full.keepAliveRate, plain?.keepAliveRate);
  push("HTTP kept alive (wrk, 16)", full.keepAliveRate, "req/s", (f) => f.keepAliveRate, {
    text: ">= 1.0x the plaintext socat chain",
    ratio: kaRatio,
    vs: "plaintext socat",
    met: (_v, r) => r !== undefined && r >= 1,
  });
  const pgRatio = ratio(full.pgTps, direct?.pgTps);
  push(`pgbench -c 16 -T ${PG_SECONDS}, full path`, full.pgTps, "tps", (f) => f.pgTps, {
    text: ">= 0.6x direct",
    ratio: pgRatio,
    vs: "direct",
    met: (_v, r) => r !== undefined && r >= 0.6,
  });
  const pgcRatio = ratio(full.pgConnectTps, direct?.pgConnectTps);
  push(
    "pgbench -C (new connection per transaction), 16 clients, full path",
    full.pgConnectTps,
    "tps",
    (f) => f.pgConnectTps,
    {
      text: "reported (issue: 0.36-0.39x direct today)",
      ratio: pgcRatio,
      vs: "direct",
      met: () => true,
    },
  );
  const failures = [...results.entries()]
    .filter(([, f]) => (f.closeFailures ?? 0) > 0)
    .map(([n, f]) => `${n}: ${f.closeFailures}`);
  if (failures.length > 0) notes.push(`failed connections in the connect probe: ${failures.join("; ")}`);
  notes.push(
    `iperf3 and wrk run ${SECONDS} s per row, pgbench -c 16 ${PG_SECONDS} s; every path against the same targets (iperf3 -s, a Node HTTP server answering 1 KiB, PostgreSQL with fsync off, scale 1) in the same run`,
    "full path: the npm start topology — gateway, relay emulator with TLS on both legs, relayListener module configured through its twin, site onboarded through the rollout API with per-source limits raised to 1000 for the benchmark's 16 clients; all on this machine's cores with the clients",
    "socat TLS chain: hop 1 TCP-LISTEN → OPENSSL, hop 2 OPENSSL-LISTEN → OPENSSL, hop 3 OPENSSL-LISTEN → TCP, each with fork, RSA-2048 self-signed certificate, verify=0; its CPU is hop 1 + hop 3 (the ends that stand where gateway and module stand), children included",
    "concurrent idle tunnels and gateway memory per tunnel: see the Cloud gateway section",
  );
  return { title: "Real clients through the tunnel (issue 16's table)", figures, notes };
}
