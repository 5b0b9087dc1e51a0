/**
 * Real third-party clients through every path, side by side in one run:
 *
 *   direct · socat, 3 hops, plaintext (`fork`) · socat, 3 hops, TLS on the two relay legs (hop 1
 *   TCP → TLS, hop 2 TLS → TLS, hop 3 TLS → TCP) · Relay Fleet full path as `npm start` runs it
 *   (gateway → relay emulator over wss → relayListener module → target, every part its own
 *   process, the site onboarded through the rollout API).
 *
 * Rows: iperf3 one stream (and CPU seconds per GiB at the two ends: gateway + module, socat hop 1
 * + hop 3), HTTP with a new connection per request (wrk, 16 at once, `Connection: close`, 1 KiB
 * reply; connect-to-first-byte percentiles from bench/lib/connect-probe.ts), HTTP kept alive (wrk,
 * 16), `pgbench -c 16` and `pgbench -C` against a local PostgreSQL server. A row whose tool is not
 * installed is reported as not measured, with the command that installs it.
 *
 * Durations: BENCH_CLIENT_SECONDS (iperf3, wrk; default 10), BENCH_PG_SECONDS (pgbench -c 16;
 * default 30; -C runs a third of it). BENCH_PROFILE_DIR: V8 CPU profiles of the fleet's processes.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { startNodeProcess } from "../sim/child-process.ts";
import { Fleet } from "../sim/fleet.ts";
import { freePort } from "../sim/ports.ts";
import { type PostgresServer, startPostgres } from "./lib/postgres-server.ts";
import { measurePath, type PathFigures, type PathUnderTest } from "./lib/real-client-runs.ts";
import { report } from "./lib/real-clients-report.ts";
import { makeCertificate, type SocatChain, startSocatChain } from "./lib/socat-chains.ts";
import { findTool, missingNote, run, socatHasOpenssl } from "./lib/tools.ts";
import type { BenchSection } from "./types.ts";

export async function runBenchmark(): Promise<BenchSection> {
  const tools = {
    iperf3: findTool("iperf3"),
    wrk: findTool("wrk"),
    pgbench: findTool("pgbench"),
    socat: findTool("socat"),
    openssl: findTool("openssl"),
    postgres: findTool("postgres"),
  };
  const notes: string[] = [];
  const missing = Object.entries(tools)
    .filter(([, file]) => file === undefined)
    .map(([name]) => name);
  if (missing.length > 0) notes.push(missingNote(missing));
  const socatTls = tools.socat && tools.openssl && socatHasOpenssl(tools.socat);
  if (tools.socat && !socatTls) notes.push("socat has no OpenSSL support: the TLS chain is not measured");

  const dir = mkdtempSync(join(tmpdir(), "relay-fleet-bench-clients-"));
  const cleanups: Array<() => unknown> = [];
  const children: ChildProcess[] = [];
  let fleet: Fleet | undefined;
  try {
    // Targets: iperf3 servers, the 1 KiB HTTP server, PostgreSQL. Each path gets its own iperf3
    // server: one still tearing down the last test (a socat child closing) refuses the next.
    const iperfServer = async (): Promise<number | undefined> => {
      if (!tools.iperf3) return undefined;
      const port = await freePort();
      children.push(spawn(tools.iperf3, ["-s", "-p", String(port), "-B", "127.0.0.1"], { stdio: "ignore" }));
      await new Promise((r) => setTimeout(r, 300));
      return port;
    };
    const iperfPort = await iperfServer();
    const httpServer = await startNodeProcess({ name: "http-1k", script: "bench/lib/http-1k-server.ts" });
    cleanups.push(() => httpServer.stop("SIGTERM"));
    const httpPort = httpServer.ready.port as number;
    let postgres: PostgresServer | undefined;
    if (tools.pgbench && tools.postgres) {
      postgres = await startPostgres();
      cleanups.push(() => postgres?.stop());
      await run(
        tools.pgbench,
        ["-i", "-s", "1", "-q", "-h", "127.0.0.1", "-p", String(postgres.port), "-U", "postgres", "postgres"],
        120_000,
      );
    }
    const targets = { iperf: iperfPort, http: httpPort, pg: postgres?.port };
    // The issue compares pgbench through the tunnel with direct only: no socat chain for it.
    const socatTargets = async () => ({ iperf: await iperfServer(), http: targets.http });

    const paths: PathUnderTest[] = [
      { name: "direct", host: "127.0.0.1", iperfPort, httpPort, pgPort: postgres?.port, endPids: [] },
    ];
    const chainPath = (
      name: string,
      chains: Partial<Record<keyof typeof targets, SocatChain>>,
      ends: boolean,
    ) => {
      return {
        name,
        host: "127.0.0.1",
        iperfPort: chains.iperf?.port,
        httpPort: chains.http?.port,
        pgPort: undefined,
        endPids: ends && chains.iperf ? [chains.iperf.pids[0] as number, chains.iperf.pids[2] as number] : [],
      };
    };
    if (tools.socat) {
      const plain: Partial<Record<keyof typeof targets, SocatChain>> = {};
      for (const [k, port] of Object.entries(await socatTargets()) as Array<
        [keyof typeof targets, number | undefined]
      >) {
        if (port === undefined) continue;
        const chain = await startSocatChain(tools.socat, port);
        cleanups.push(chain.stop);
        plain[k] = chain;
      }
      paths.push(chainPath("socat, 3 hops, plaintext", plain, false));
      if (socatTls && tools.openssl) {
        const cert = makeCertificate(tools.openssl, dir);
        const tls: Partial<Record<keyof typeof targets, SocatChain>> = {};
        for (const [k, port] of Object.entries(await socatTargets()) as Array<
          [keyof typeof targets, number | undefined]
        >) {
          if (port === undefined) continue;
          const chain = await startSocatChain(tools.socat, port, cert);
          cleanups.push(chain.stop);
          tls[k] = chain;
        }
        paths.push(chainPath("socat, 3 hops, TLS", tls, true));
      }
    }

    // The product, as npm start runs it.
    const stateDir = join(dir, "fleet");
    const profileDir = process.env.BENCH_PROFILE_DIR;
    // The fleet's children write a V8 CPU profile each when they exit (sim/child-process.ts).
    if (profileDir) process.env.RELAY_FLEET_CPU_PROF_DIR = profileDir;
    fleet = await Fleet.start({ stateDir, sites: 0, gateways: 1 });
    const limits = { maxConnections: 1000, maxConnectionsPerSource: 1000 };
    const mappings: Record<string, unknown> = {};
    for (const [k, port] of Object.entries({ ...targets, iperf: await iperfServer() })) {
      if (port !== undefined) mappings[k] = { target: `127.0.0.1:${port}`, ...limits };
    }

    const site = await fleet.addSite("bench", mappings);
    delete process.env.RELAY_FLEET_CPU_PROF_DIR;
    const gateway = fleet.gateways[0];
    const module = site.modules[0];
    if (!gateway || !module) throw new Error("fleet has no gateway or module");
    paths.push({
      name: "Relay Fleet full path",
      host: gateway.host,
      iperfPort: site.publicPorts.iperf,
      httpPort: site.publicPorts.http,
      pgPort: site.publicPorts.pg,
      endPids: [gateway.process.child.pid as number, module.process.child.pid as number],
    });

    const results = new Map<string, PathFigures>();
    for (const path of paths) results.set(path.name, await measurePath(path, tools));
    return report(results, notes);
  } finally {
    await fleet?.stop();
    for (const c of cleanups.reverse()) await c();
    for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  process.stdout.write(`${JSON.stringify(await runBenchmark(), null, 2)}\n`);
  process.exit(0);
}
