/**
 * One process of the relay-path benchmark (`bench/relay-path.bench.ts` spawns one per role, so the
 * OS accounts each role's CPU separately):
 *
 *   target        TCP sink: per connection an 8-byte big-endian length L, then L bytes; answers
 *                 one byte "K" once all L arrived.
 *   our-sender    TCP entry → project sender (`openLogicalPort` + `pumpStreams`), with a standby
 *                 pool (lib/hyco/standby.ts) unless `cold`
 *   our-listener  project listener → `readLogicalPort` (holding standbys) → target → `pumpStreams`
 *   hyco-sender   TCP entry → hyco-ws `relayedConnect`, bytes copied the straightforward way
 *   hyco-listener hyco-ws `RelayedServer` → target, bytes copied the straightforward way
 *
 * Args: role and a JSON config. Prints `{"event":"ready","port":N}`; answers IPC "cpu" with
 * `process.cpuUsage()` (getrusage from the kernel).
 */
import { once } from "node:events";
import net, { type AddressInfo } from "node:net";
import hyco, { type LegacyWebSocket } from "hyco-ws";
import { HeaderReader } from "../lib/hyco/header-reader.ts";
import { takeBufferedMessages } from "../lib/hyco/held-messages.ts";
import { HybridConnectionListener } from "../lib/hyco/listener.ts";
import { acceptStream, readLogicalPort, refuseStream } from "../lib/hyco/logical-port-listener.ts";
import { pumpStreams } from "../lib/hyco/pump.ts";
import { StandbyGate, StandbyPool, startTunnelPump } from "../lib/hyco/standby.ts";
import { openLogicalPort } from "../lib/hyco/tunnel.ts";

interface Config {
  url: string;
  hc: string;
  keyName: string;
  key: string;
  targetPort: number;
  unmasked?: boolean;
  /** No standby connections: every connection goes through the relay's rendezvous. */
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

function ourSender(): void {
  const opts = {
    endpoint: config.url,
    hybridConnection: config.hc,
    keyName: config.keyName,
    key: config.key,
    ...(config.unmasked ? { unmaskedFrames: true } : {}),
  };
  const standby = config.cold
    ? undefined
    : new StandbyPool(
        opts,
        process.env.BENCH_RELAY_STANDBY ? { size: Number(process.env.BENCH_RELAY_STANDBY) } : {},
      );
  entry((socket) => {
    openLogicalPort(opts, "bench", { pipelined: true, ...(standby ? { standby } : {}) }).then(
      (ws) => {
        startTunnelPump(ws, socket);
        socket.resume();
      },
      () => socket.destroy(),
    );
  });
}

function ourListener(): void {
  const listener = new HybridConnectionListener({
    endpoint: config.url,
    hybridConnection: config.hc,
    keyName: config.keyName,
    key: config.key,
    ...(config.unmasked ? { unmaskedFrames: true } : {}),
  });
  const gate = new StandbyGate({ max: 16, idleMs: 300_000 });
  listener.on("accept", async (req) => {
    try {
      const ws = await req.accept();
      // The module's own logical-port layer (lib/hyco/logical-port-listener.ts): a standby, once
      // answered, stays one; after each clean end of stream it waits for the next.
      let standby = false;
      for (;;) {
        const reader = new HeaderReader(ws, takeBufferedMessages(ws));
        const request = await readLogicalPort(ws, reader, {
          preambleTimeoutMs: 10_000,
          standby: gate,
          recycled: standby,
        });
        if (!request) return;
        standby = request.standby;
        if (request.portName !== "bench") {
          reader.release();
          return refuseStream(ws, 1008, "no such logical port");
        }
        const sock = connectTarget();
        await once(sock, "connect");
        acceptStream(ws);
        const result = await pumpStreams(ws, sock, { reusable: standby, initialData: reader.release() });
        if (!result.reusable) return;
      }
    } catch {
      // a failed connection is the sender's problem; the benchmark counts it there
    }
  });
  listener.on("state", (s) => {
    if (s.status === "online") ready();
  });
  listener.start();
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
  "our-sender": ourSender,
  "our-listener": ourListener,
  "hyco-sender": hycoSender,
  "hyco-listener": hycoListener,
};
const run = roles[role];
if (!run) {
  process.stderr.write(`unknown role '${role}'\n`);
  process.exit(2);
}
run();
