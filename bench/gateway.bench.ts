/**
 * Gateway benchmark: client → gateway → relay emulator → relayListener module → target, each hop
 * its own process (Azurite holds the ledger; the module is configured through its twin on the IoT
 * Hub emulator, which runs in this process), against direct TCP to the same target.
 *   - throughput of one tunnel (echo round trip of 64 MiB), MiB/s
 *   - setup latency (connect → first echoed byte), median and p95
 *   - concurrent idle tunnels held by one gateway and one module, and RSS per tunnel of both
 * Each process may hold 20,000 fds: 8,000 tunnels cost ~16,000 in the gateway, the relay and the
 * module, and 16,000 here (clients + target side).
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { createIotHubServiceClients } from "../lib/azure/iothub-service.ts";
import { audienceFor, createSasToken } from "../lib/hyco/sas.ts";
import { createLedger } from "../lib/ledger/index.ts";
import { startAzurite } from "../sim/azurite.ts";
import { startIotHubEmulator } from "../sim/iothub-emulator/index.ts";
import type { BenchSection } from "./types.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const TUNNELS = Number(process.env.GATEWAY_BENCH_TUNNELS ?? 8000);

interface Child {
  line: Record<string, unknown>;
  pid: number;
  stop(): void;
}

/** The site's allowlist file (the module reads no allowlist from its environment). */
function loopbackAllowlistFile(): string {
  const file = join(mkdtempSync(join(tmpdir(), "relay-bench-")), "allowlist.txt");
  writeFileSync(file, "127.0.0.0/8:*\n");
  return file;
}

/** Starts `node --import tsx` with a script or inline module; resolves with its first JSON line matching `event`. */
function startChild(args: string[], env: NodeJS.ProcessEnv, event: string): Promise<Child> {
  const child = spawn(process.execPath, ["--import", "tsx", ...args], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  process.once("exit", () => child.kill("SIGKILL"));
  return new Promise((res, rej) => {
    let buf = "";
    let found = false;
    child.stdout!.setEncoding("utf8").on("data", (c: string) => {
      // Keep reading (a full pipe would block the child) but stop keeping lines once found.
      if (found) return;
      buf += c;
      for (const l of buf.split("\n")) {
        if (!l.includes(`"${event}"`)) continue;
        found = true;
        buf = "";
        res({ line: JSON.parse(l), pid: child.pid!, stop: () => child.kill("SIGTERM") });
        return;
      }
    });
    child.once("exit", (code) => rej(new Error(`${args.join(" ")} exited ${code}`)));
  });
}

const MODULE_ID = "relayListener";

function dial(port: number): Promise<Socket> {
  return new Promise((res, rej) => {
    const s = connect({ port, host: "127.0.0.1", noDelay: true }, () => res(s));
    s.once("error", rej);
  });
}

/** Writes `bytes` in 64 KiB chunks and resolves when as many bytes came back. */
async function echoMiBps(port: number, total: number): Promise<number> {
  const s = await dial(port);
  const chunk = randomBytes(64 * 1024);
  const start = process.hrtime.bigint();
  await new Promise<void>((res) => {
    let got = 0;
    s.on("data", (c: Buffer) => {
      got += c.length;
      if (got >= total) res();
    });
    let sent = 0;
    const pump = () => {
      while (sent < total) {
        sent += chunk.length;
        if (!s.write(chunk)) return void s.once("drain", pump);
      }
    };
    pump();
  });
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  s.destroy();
  return total / 1024 / 1024 / secs;
}

async function setupLatencies(port: number, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    const s = await dial(port);
    s.write("x");
    await new Promise((r) => s.once("data", r));
    out.push(Number(process.hrtime.bigint() - t0) / 1e6);
    s.destroy();
  }
  return out.sort((a, b) => a - b);
}

const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;

/** Sum of a Prometheus metric's samples on `http://127.0.0.1:<port>/metrics`. */
async function gatewayMetric(adminPort: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  return text
    .split("\n")
    .filter((l) => l.startsWith(name) && !l.startsWith("#"))
    .reduce((sum, l) => sum + Number(l.split(" ").pop()), 0);
}

export async function runBenchmark(): Promise<BenchSection> {
  const notes: string[] = [];
  const sockets = new Set<Socket>();
  const target = createServer((s) => {
    sockets.add(s);
    s.on("error", () => {});
    s.pipe(s);
  });
  await new Promise<void>((r) => target.listen({ port: 0, host: "127.0.0.1", backlog: 4096 }, r));
  const targetPort = (target.address() as { port: number }).port;
  const azurite = await startAzurite();
  const relay = await startChild(["sim/relay-emulator/main.ts", "--hc", "site-bench"], {}, "listening");
  const children: Child[] = [relay];
  const closers: Array<() => Promise<unknown>> = [];
  try {
    const url = String(relay.line.url);
    const endpoint = String(relay.line.endpoint);
    const manageKeyName = String(relay.line.manageKeyName);
    const manageKey = String(relay.line.manageKey);
    const adminToken = createSasToken(audienceFor(endpoint, ""), manageKeyName, manageKey, {
      ttlSeconds: 3600,
    });
    const http = url.replace(/^ws/, "http");
    const putRule = async (name: string, rights: string[]) =>
      (await (
        await fetch(`${http}/$admin/hybridConnections/site-bench/authorizationRules/${name}`, {
          method: "PUT",
          headers: { authorization: adminToken, "content-type": "application/json" },
          body: JSON.stringify({ rights }),
        })
      ).json()) as { primaryKey: string };
    const rule = await putRule("send", ["Send"]);
    const listen = await putRule("listen", ["Listen"]);

    // The site: the relayListener module, configured only through its module twin.
    const hub = await startIotHubEmulator();
    closers.push(() => hub.close());
    const { registry } = createIotHubServiceClients(hub.serviceConnectionString, {
      restPort: hub.httpsPort,
      ca: hub.caCert,
    });
    await registry.create({ deviceId: "bench", capabilities: { iotEdge: true } });
    await registry.addModule({ deviceId: "bench", moduleId: MODULE_ID });
    const site = await startChild(
      ["modules/relayListener/src/main.ts"],
      {
        ...hub.moduleEnvironment("bench", MODULE_ID),
        RELAY_ALLOWLIST_FILE: loopbackAllowlistFile(),
        METRICS_PORT: "0",
        METRICS_HOST: "127.0.0.1",
        LOG_LEVEL: "info",
      },
      "relayListener ready",
    );
    children.push(site);
    const moduleMetricsPort = Number(site.line.metricsPort);
    const { responseBody } = await registry.updateModuleTwin(
      "bench",
      MODULE_ID,
      {
        properties: {
          desired: {
            schemaVersion: "1.0",
            relay: {
              endpoint: url,
              hybridConnection: "site-bench",
              sasKeyName: "listen",
              sasKey: listen.primaryKey,
            },
            // 0 = no per-mapping cap: the benchmark holds 8,000 connections on one mapping.
            mappings: { echo: { target: `127.0.0.1:${targetPort}`, maxConnections: 0 } },
          },
        },
      },
      "*",
    );
    const version = (responseBody as unknown as { properties: { desired: { $version: number } } }).properties
      .desired.$version;
    for (let i = 0; ; i++) {
      const twin = (await registry.getModuleTwin("bench", MODULE_ID)).responseBody as unknown as {
        properties: {
          reported: {
            appliedDesiredVersion?: number;
            relay?: { status?: string };
            mappings?: { echo?: { state?: string } };
          };
        };
      };
      const r = twin.properties.reported;
      if (
        r.appliedDesiredVersion === version &&
        r.relay?.status === "online" &&
        r.mappings?.echo?.state === "active"
      )
        break;
      if (i > 300) throw new Error("the module did not report the mapping active within 30 s");
      await new Promise((res) => setTimeout(res, 100));
    }
    const publicPort = await new Promise<number>((r) => {
      const s = createServer().listen(0, "127.0.0.1", () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => r(p));
      });
    });
    const ledger = createLedger(azurite.connectionString, "portledger", {
      ranges: [{ from: 1024, to: 65535 }],
    });
    await ledger.ensureTable();
    await ledger.putSite({
      siteId: "bench",
      hybridConnection: "site-bench",
      relayEndpoint: url,
      sendKeyName: "send",
      sendKey: rule.primaryKey,
      deviceId: "bench",
      createdAt: new Date().toISOString(),
    });
    // Every tunnel comes from this one address: the per-address cap is lifted for this route.
    await ledger.allocate({
      siteId: "bench",
      portName: "echo",
      endpoint: { kind: "tcp", port: publicPort },
      options: { maxConnectionsPerSource: 0 },
    });
    const gw = await startChild(
      ["cloud/gateway/src/main.ts"],
      {
        LOG_LEVEL: "info",
        LEDGER_CONNECTION_STRING: azurite.connectionString,
        GATEWAY_RELAY_AUTH: "sas",
        LEDGER_RELOAD_INTERVAL_MS: "0",
        GATEWAY_BIND_HOST: "127.0.0.1",
        GATEWAY_HEALTH_HOST: "127.0.0.1",
        GATEWAY_HEALTH_PORT: "0",
      },
      "admin-listening",
    );
    children.push(gw);
    const adminPort = Number(gw.line.port);
    await new Promise((r) => setTimeout(r, 1000));

    const total = 64 * 1024 * 1024;
    await echoMiBps(publicPort, 4 * 1024 * 1024); // warm-up
    const viaGateway = await echoMiBps(publicPort, total);
    const direct = await echoMiBps(targetPort, total);
    await setupLatencies(publicPort, 20);
    const lat = await setupLatencies(publicPort, 200);
    const latDirect = await setupLatencies(targetPort, 200);

    // Concurrent idle tunnels: open in batches, each proven established by one echoed byte.
    const rssBefore = await gatewayMetric(adminPort, "process_resident_memory_bytes");
    const heapBefore = await gatewayMetric(adminPort, "nodejs_heap_size_used_bytes");
    const moduleRssBefore = await gatewayMetric(moduleMetricsPort, "process_resident_memory_bytes");
    const clients: Socket[] = [];
    let failed = 0;
    const t0 = Date.now();
    for (let i = 0; i < TUNNELS; i += 200) {
      const batch = await Promise.allSettled(
        Array.from({ length: Math.min(200, TUNNELS - i) }, async () => {
          const s = await dial(publicPort);
          s.on("error", () => {});
          clients.push(s);
          s.write("x");
          await new Promise<void>((res, rej) => {
            const timer = setTimeout(() => rej(new Error("no echo")), 30_000);
            s.once("data", () => {
              clearTimeout(timer);
              res();
            });
            s.once("close", () => rej(new Error("closed")));
          });
        }),
      );
      failed += batch.filter((b) => b.status === "rejected").length;
    }
    const openSecs = (Date.now() - t0) / 1000;
    await new Promise((r) => setTimeout(r, 2000));
    const active = await gatewayMetric(adminPort, "gateway_connections_active");
    const rssAfter = await gatewayMetric(adminPort, "process_resident_memory_bytes");
    const heapAfter = await gatewayMetric(adminPort, "nodejs_heap_size_used_bytes");
    const moduleActive = await gatewayMetric(moduleMetricsPort, "relay_listener_active_connections");
    const moduleRssAfter = await gatewayMetric(moduleMetricsPort, "process_resident_memory_bytes");
    const modulePerTunnelKiB = (moduleRssAfter - moduleRssBefore) / 1024 / Math.max(1, moduleActive);
    const held = active;
    const perTunnelKiB = (rssAfter - rssBefore) / 1024 / Math.max(1, held);
    const heapPerTunnelKiB = (heapAfter - heapBefore) / 1024 / Math.max(1, held);
    for (const s of clients) s.destroy();
    notes.push(
      `${TUNNELS} tunnels requested, ${held} held open by the gateway (${failed} failed), opened in ${openSecs.toFixed(1)} s in batches of 200.`,
      `Gateway RSS ${(rssBefore / 1048576).toFixed(0)} MiB → ${(rssAfter / 1048576).toFixed(0)} MiB; JS heap ${(heapBefore / 1048576).toFixed(0)} → ${(heapAfter / 1048576).toFixed(0)} MiB.`,
      `Module: ${moduleActive} relayed connections live; RSS ${(moduleRssBefore / 1048576).toFixed(0)} MiB → ${(moduleRssAfter / 1048576).toFixed(0)} MiB.`,
      "Site side: the real relayListener module (2 listeners, configured through its twin on the IoT Hub emulator); relay emulator over plain ws:// on loopback; all processes on one 2-core machine.",
    );
    return {
      title: "Cloud gateway (gateway → relay emulator → relayListener module → target)",
      figures: [
        {
          metric: "throughput, one tunnel (echo)",
          value: viaGateway,
          unit: "MiB/s",
          baselines: [{ name: "direct TCP", value: direct }],
        },
        {
          metric: "setup latency (connect → first echo), median",
          value: pct(lat, 0.5),
          unit: "ms",
          baselines: [{ name: "direct TCP", value: pct(latDirect, 0.5) }],
        },
        {
          metric: "setup latency p95",
          value: pct(lat, 0.95),
          unit: "ms",
          baselines: [{ name: "direct TCP", value: pct(latDirect, 0.95) }],
        },
        {
          metric: "concurrent idle tunnels held",
          value: held,
          unit: "tunnels",
          target: ">= 8000",
          met: held >= 8000,
        },
        {
          metric: "gateway memory per tunnel (RSS)",
          value: perTunnelKiB,
          unit: "KiB",
          target: "< 30 KiB",
          met: perTunnelKiB < 30,
        },
        { metric: "gateway JS heap per tunnel", value: heapPerTunnelKiB, unit: "KiB" },
        { metric: "concurrent tunnels live in the module", value: moduleActive, unit: "connections" },
        { metric: "module memory per tunnel (RSS)", value: modulePerTunnelKiB, unit: "KiB" },
      ],
      notes,
    };
  } finally {
    for (const c of children.reverse()) c.stop();
    for (const s of sockets) s.destroy();
    target.close();
    for (const close of closers) await close();
    await azurite.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
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
