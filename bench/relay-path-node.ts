/**
 * One process of the relay-path benchmark (`bench/relay-path.bench.ts` spawns one per role, so the
 * OS accounts each role's CPU separately):
 *
 *   target        TCP sink: per connection an 8-byte big-endian length L, then L bytes; answers
 *                 one byte "K" once all L arrived.
 *   gateway       the cloud gateway's own code (`Gateway` from cloud/gateway/src/gateway.ts with
 *                 `relayTunnelOpener`, whose tunnels pump themselves, and `StandbyPools`, configured
 *                 by the gateway's own config schema and its defaults), one public port routed to the site; the
 *                 ledger read is replaced by a fixed snapshot of one site and one route.
 *   module        the relayListener module's own code (`Reconciler` with the module's listener
 *                 factory and settings defaults), fed a desired twin document with one mapping
 *                 `bench` to the target; the IoT Hub twin transport is left out.
 *   hyco-sender   TCP entry → hyco-ws `relayedConnect`, bytes copied the straightforward way
 *   hyco-listener hyco-ws `RelayedServer` → target, bytes copied the straightforward way
 *
 * Nothing of the data path is written here for the project: the gateway and module roles only
 * wire the product's entry points the way their `main.ts` do.
 *
 * Args: role and a JSON config. Prints `{"event":"ready","port":N}`; answers IPC "cpu" with
 * `process.cpuUsage()` (getrusage from the kernel).
 */
import net, { type AddressInfo } from "node:net";
import hyco, { type LegacyWebSocket } from "hyco-ws";
import { loadConfig } from "../cloud/gateway/src/config.ts";
import { Gateway } from "../cloud/gateway/src/gateway.ts";
import { createMetrics } from "../cloud/gateway/src/metrics.ts";
import { relayTunnelOpener } from "../cloud/gateway/src/relay-tunnel.ts";
import { StandbyPools } from "../lib/hyco/standby-pools.ts";
import { createLogger } from "../lib/log.ts";
import { createListenerFactory } from "../modules/relayListener/src/listener-factory.ts";
import { Reconciler } from "../modules/relayListener/src/reconciler.ts";
import { readSettings } from "../modules/relayListener/src/settings.ts";

interface Config {
  url: string;
  hc: string;
  keyName: string;
  key: string;
  targetPort: number;
  /** Gateway role: its public port (chosen free by the benchmark). */
  publicPort?: number;
  /** No standby connections (GATEWAY_STANDBY_CONNECTIONS=0): every connection through the rendezvous. */
  cold?: boolean;
}

const role = process.argv[2] ?? "";
const config = JSON.parse(process.argv[3] ?? "{}") as Config;

// A clean exit on SIGTERM, so `--cpu-prof` runs write their profile.
process.on("SIGTERM", () => process.exit(0));

process.on("message", (msg) => {
  if (msg === "cpu") process.send?.({ cpu: process.cpuUsage() });
});

function ready(port = 0): void {
  process.stdout.write(`${JSON.stringify({ event: "ready", port })}\n`);
}

function entry(onSocket: (socket: net.Socket) => void): void {
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    socket.on("error", () => {});
    socket.pause();
    onSocket(socket);
  });
  server.listen(0, "127.0.0.1", () => ready((server.address() as AddressInfo).port));
}

function target(): void {
  entry((socket) => {
    let header: Buffer | undefined = Buffer.alloc(0);
    let remaining = -1;
    socket.on("data", (chunk: Buffer) => {
      let data = chunk;
      if (header) {
        header = Buffer.concat([header, data]);
        if (header.length < 8) return;
        remaining = Number(header.readBigUInt64BE(0));
        data = header.subarray(8);
        header = undefined;
      }
      remaining -= data.length;
      if (remaining === 0) socket.write("K");
    });
    socket.on("end", () => socket.end());
    socket.resume();
  });
}

function connectTarget(): net.Socket {
  const s = net.connect({ port: config.targetPort, host: "127.0.0.1", allowHalfOpen: true, noDelay: true });
  s.on("error", () => {});
  return s;
}

const silent = createLogger("bench", { level: "silent" });

/** The gateway as cloud/gateway/src/main.ts wires it, with a fixed one-route ledger. */
function gateway(): void {
  const env: NodeJS.ProcessEnv = {
    GATEWAY_RELAY_AUTH: "sas",
    GATEWAY_BIND_HOST: "127.0.0.1",
    ...(config.cold ? { GATEWAY_STANDBY_CONNECTIONS: "0" } : {}),
    // Knobs the benchmark may turn (the gateway's own variables, as an operator would).
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith("GATEWAY_"))),
    LEDGER_CONNECTION_STRING: "UseDevelopmentStorage=true",
  };
  const settings = loadConfig(env);
  const metrics = createMetrics({ defaultMetrics: false });
  const standby =
    settings.GATEWAY_STANDBY_CONNECTIONS > 0
      ? new StandbyPools({
          size: settings.GATEWAY_STANDBY_CONNECTIONS,
          maxSize: settings.GATEWAY_STANDBY_MAX,
          warmForMs: settings.GATEWAY_STANDBY_WARM_MS,
        })
      : undefined;
  const port = config.publicPort ?? 0;
  const site = {
    siteId: "bench",
    hybridConnection: config.hc,
    relayEndpoint: config.url,
    sendKeyName: config.keyName,
    sendKey: config.key,
  };
  const gw = new Gateway({
    loadLedger: async () => ({
      sites: new Map([["bench", site]]),
      routes: [
        {
          key: String(port),
          kind: "tcp" as const,
          port,
          siteId: "bench",
          portName: "bench",
          allowCidrs: [],
          maxConnections: 10_000,
          ratePerMinute: 0,
          maxConnectionsPerSource: 10_000,
          proxyProtocol: false,
        },
      ],
      problems: [],
    }),
    openTunnel: relayTunnelOpener({ timeoutMs: settings.GATEWAY_CONNECT_TIMEOUT_MS, standby }),
    metrics,
    log: silent,
    bindHost: settings.GATEWAY_BIND_HOST,
    reloadIntervalMs: 0,
    firstBytesTimeoutMs: settings.GATEWAY_FIRST_BYTES_TIMEOUT_MS,
    routeDefaults: {
      maxConnectionsPerSource: settings.GATEWAY_MAX_CONNECTIONS_PER_SOURCE,
      silentTimeoutMs: settings.GATEWAY_SILENT_TIMEOUT_MS,
      idleTimeoutMs: settings.GATEWAY_IDLE_TIMEOUT_MS,
    },
  });
  void gw.start().then((r) => {
    if (!r.ok || gw.listening().length === 0) {
      process.stderr.write(`gateway did not bind: ${JSON.stringify(r)} ${JSON.stringify(gw.unbound())}\n`);
      process.exit(1);
    }
    ready(gw.listening()[0]?.port ?? 0);
  });
}

/** The relayListener module as modules/relayListener/src/module.ts wires it, minus the twin transport. */
function module(): void {
  const settings = readSettings({
    ...process.env,
    RELAY_LISTENER_COUNT: process.env.RELAY_LISTENER_COUNT ?? "1",
  });
  const reconciler = new Reconciler({
    listenerFactory: createListenerFactory({
      ca: settings.relayCa,
      count: settings.listenerCount,
      retryPeriodMs: settings.relayRetryPeriodMs,
      logger: silent,
    }),
    listenerCount: settings.listenerCount,
    allowlist: settings.allowlist,
    logger: silent,
    preambleTimeoutMs: settings.preambleTimeoutMs,
    keepAliveMs: settings.keepAliveMs,
    standby: settings.standby,
  });
  void reconciler
    .applyDesired(
      {
        schemaVersion: "1.0",
        relay: {
          endpoint: config.url,
          hybridConnection: config.hc,
          sasKeyName: config.keyName,
          sasKey: config.key,
        },
        mappings: { bench: { target: `127.0.0.1:${config.targetPort}`, maxConnections: 10_000 } },
      },
      1,
    )
    .then(async () => {
      for (let i = 0; i < 300; i++) {
        const state = reconciler.state();
        if (state.relay.status === "online") return ready();
        await new Promise((r) => setTimeout(r, 100));
      }
      process.stderr.write("module never came online\n");
      process.exit(1);
    });
}

/** The straightforward copy loop a hyco-ws user writes: no backpressure, FIN → close. */
function bridge(ws: LegacyWebSocket, socket: net.Socket): void {
  socket.on("data", (d: Buffer) => ws.send(d, { binary: true }));
  socket.on("end", () => ws.close());
  socket.on("close", () => ws.close());
  ws.on("message", (d: Buffer) => socket.write(d));
  ws.on("close", () => socket.end());
  ws.on("error", () => socket.destroy());
}

function hycoSender(): void {
  const uri = `${config.url}/$hc/${config.hc}?sb-hc-action=connect`;
  entry((socket) => {
    const token = hyco.createRelayToken(`http://127.0.0.1/${config.hc}`, config.keyName, config.key);
    const ws = hyco.relayedConnect(uri, token, () => {
      bridge(ws, socket);
      socket.resume();
    });
    ws.on("error", () => socket.destroy());
  });
}

function hycoListener(): void {
  const server = new hyco.RelayedServer({
    server: `${config.url}/$hc/${config.hc}?sb-hc-action=listen`,
    token: () => hyco.createRelayToken(`http://127.0.0.1/${config.hc}`, config.keyName, config.key, 7200),
  });
  server.on("error", () => {});
  server.on("listening", () => ready());
  server.on("connection", (ws: LegacyWebSocket) => {
    ws.on("error", () => {});
    ws.once("open", () => {
      bridge(ws, connectTarget()); // writes before connect are queued by net.Socket
    });
  });
}

const roles: Record<string, () => void> = {
  target,
  gateway,
  module,
  "hyco-sender": hycoSender,
  "hyco-listener": hycoListener,
};
const run = roles[role];
if (!run) {
  process.stderr.write(`unknown role '${role}'\n`);
  process.exit(2);
}
run();
