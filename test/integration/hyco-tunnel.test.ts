/**
 * Logical ports (azbridge preamble) end to end through the relay emulator: sender writes the
 * preamble, listener reads it (the module's own `readLogicalPort`), decides, answers; bad input is
 * refused with coded errors and the listener's close codes.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import net, { type AddressInfo } from "node:net";
import { PassThrough } from "node:stream";
import { describe, it, type TestContext } from "node:test";
import type { WebSocket } from "ws";
import { HeaderReader } from "../../lib/hyco/header-reader.ts";
import { type AcceptRequest, HybridConnectionListener } from "../../lib/hyco/listener.ts";
import {
  acceptStream,
  CLOSE_CODES,
  type ReadLogicalPortOptions,
  readLogicalPort,
  refuseStream,
} from "../../lib/hyco/logical-port-listener.ts";
import { encodePreamble, MODE_DATAGRAM } from "../../lib/hyco/preamble.ts";
import { startPump } from "../../lib/hyco/pump.ts";
import { connectSender } from "../../lib/hyco/sender.ts";
import { openLogicalPort } from "../../lib/hyco/tunnel.ts";
import { createLogger } from "../../lib/log.ts";
import { waitFor } from "../helpers/index.ts";
import { relayWithHybridConnection } from "../helpers/relay-emulator-clients.ts";

const HC = "site-tun";

async function setup(t: TestContext, onAccept: (req: AcceptRequest) => void) {
  const { relay, listen, send } = await relayWithHybridConnection(t, HC);
  const listener = new HybridConnectionListener(listen);
  t.after(() => listener.close());
  listener.on("accept", onAccept);
  listener.start();
  await waitFor(() => listener.state.status === "online", "listener online");
  return { relay, listener, senderOpts: send };
}

/** The listener side as the module reads it: the port asked for with the reader behind it, or undefined. */
async function listen(ws: WebSocket, opts: ReadLogicalPortOptions = {}) {
  const reader = new HeaderReader(ws);
  const request = await readLogicalPort(ws, reader, opts);
  if (!request) reader.release();
  return request && { portName: request.portName, reader };
}

const noSuchPort = (ws: WebSocket) => refuseStream(ws, CLOSE_CODES.policy, "no such logical port");

async function echoTarget(t: TestContext): Promise<number> {
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on("error", () => {});
    s.write("banner\n"); // servers that talk first (SSH) must not lose their first bytes
    s.pipe(s);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  t.after(() => server.close());
  return (server.address() as AddressInfo).port;
}

describe("logical ports through the relay", () => {
  it("opens a named port, pumps to the target, keeps every byte", async (t) => {
    const port = await echoTarget(t);
    const seen: string[] = [];
    const { senderOpts } = await setup(t, async (req) => {
      const ws = await req.accept();
      const preamble = await listen(ws);
      if (!preamble) return;
      seen.push(preamble.portName);
      if (preamble.portName !== "echo") return noSuchPort(ws);
      const sock = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
      sock.on("error", () => {});
      await once(sock, "connect");
      acceptStream(ws);
      startPump(ws, sock, { initialData: preamble.reader.release() });
    });
    const tunnel = await openLogicalPort(senderOpts, "echo");
    const ws = tunnel.ws;
    const parts: Buffer[] = tunnel.takeHeld(); // the banner may have come right behind the reply
    ws.on("message", (d: Buffer) => parts.push(d));
    const payload = randomBytes(300_000);
    for (let i = 0; i < payload.length; i += 65536) ws.send(payload.subarray(i, i + 65536));
    const expected = Buffer.concat([Buffer.from("banner\n"), payload]);
    await waitFor(() => Buffer.concat(parts).length >= expected.length, "echo");
    assert.ok(Buffer.concat(parts).equals(expected));
    assert.deepEqual(seen, ["echo"]);
    ws.close();
  });

  it("delivers bytes the sender pipelined right behind the preamble", async (t) => {
    const port = await echoTarget(t);
    const { senderOpts } = await setup(t, async (req) => {
      const ws = await req.accept();
      const p = await listen(ws);
      if (!p) return;
      if (p.portName !== "echo") return noSuchPort(ws);
      const sock = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
      sock.on("error", () => {});
      await once(sock, "connect");
      acceptStream(ws);
      startPump(ws, sock, { initialData: p.reader.release() });
    });
    // A raw sender: preamble and payload in ONE message, then more messages before any reply.
    const ws = await connectSender(senderOpts);
    const parts: Buffer[] = [];
    ws.on("message", (d: Buffer) => parts.push(d));
    ws.send(Buffer.concat([encodePreamble("echo"), Buffer.from("one,")]));
    ws.send(Buffer.from("two,"));
    ws.send(Buffer.from("three"));
    await waitFor(() => Buffer.concat(parts).length >= 3 + 7 + 13, "echo");
    assert.deepEqual([...Buffer.concat(parts).subarray(0, 3)], [1, 0, 0]);
    assert.equal(Buffer.concat(parts).subarray(3).toString(), "banner\none,two,three");
    ws.close();
  });

  it("pipelined: the sender does not wait for the reply, the pump takes it off the stream", async (t) => {
    const port = await echoTarget(t);
    const { senderOpts } = await setup(t, async (req) => {
      const ws = await req.accept();
      const p = await listen(ws);
      if (!p) return;
      if (p.portName !== "echo") return noSuchPort(ws);
      const sock = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
      sock.on("error", () => {});
      await once(sock, "connect");
      acceptStream(ws);
      startPump(ws, sock, { initialData: p.reader.release() });
    });
    // A local TCP pair stands for the gateway's client connection.
    const pair = net.createServer({ allowHalfOpen: true });
    pair.listen(0, "127.0.0.1");
    await once(pair, "listening");
    t.after(() => pair.close());
    const open = async (name: string) => {
      const client = net.connect({ port: (pair.address() as AddressInfo).port, allowHalfOpen: true });
      client.on("error", () => {});
      const [server] = (await once(pair, "connection")) as [net.Socket];
      const tunnel = await openLogicalPort(senderOpts, name, { pipelined: true });
      const done = tunnel.pump(server).done;
      return { client, done };
    };
    const { client, done } = await open("echo");
    const parts: Buffer[] = [];
    client.on("data", (d: Buffer) => parts.push(d));
    const payload = randomBytes(200_000);
    client.end(payload);
    await waitFor(() => Buffer.concat(parts).length >= 7 + payload.length, "echo");
    assert.ok(Buffer.concat(parts).equals(Buffer.concat([Buffer.from("banner\n"), payload])));
    client.destroy();
    await done;
    // A refused name resets the client instead of looking like a clean EOF.
    const refused = await open("nope");
    const res = await refused.done;
    assert.equal(res.endedBy, "websocket-error");
    assert.match(res.error ?? "", /before the logical port reply|refused/);
  });

  it("refuses an unknown port name by closing: the sender gets RF_ERR_TUNNEL_REFUSED", async (t) => {
    const { senderOpts } = await setup(t, async (req) => {
      const ws = await req.accept();
      const p = await listen(ws);
      if (p?.portName === "known") acceptStream(ws);
      else noSuchPort(ws);
    });
    await assert.rejects(openLogicalPort(senderOpts, "unknown"), {
      code: "RF_ERR_TUNNEL_REFUSED",
      closeCode: CLOSE_CODES.policy,
    });
  });

  it("answers azbridge's error replies: a datagram request to a stream listener", async (t) => {
    const { senderOpts } = await setup(t, async (req) => {
      await listen(await req.accept());
    });
    await assert.rejects(openLogicalPort(senderOpts, "x", { mode: MODE_DATAGRAM }), (err: Error) => {
      assert.equal((err as { code?: string }).code, "RF_ERR_TUNNEL_REFUSED");
      assert.match(err.message, /datagram-unsupported/);
      return true;
    });
  });

  it("answers [0,0,0] to a bad version and closes 1008, times out a silent sender, survives garbage", async (t) => {
    // The listener's warnings carry each refusal's code.
    const lines = new PassThrough();
    const errors: string[] = [];
    lines.on("data", (line: Buffer) => {
      for (const l of line.toString().split("\n").filter(Boolean)) errors.push(JSON.parse(l).code);
    });
    const logger = createLogger("listener", { level: "warn", destination: lines });
    const { senderOpts } = await setup(t, async (req) => {
      const ws = await req.accept();
      await listen(ws, { preambleTimeoutMs: 500, logger });
    });
    // Bad version: azbridge's [0,0,0], then a policy close (the module's 1008; a second, simpler
    // listener variant used to close this one with 1000, as if it were a clean end).
    const ws = await connectSender(senderOpts);
    const reply = once(ws, "message");
    ws.send(Buffer.from([2, 0, 0, 1, 65]));
    assert.deepEqual([...((await reply)[0] as Buffer)], [0, 0, 0]);
    const [versionClose] = (await once(ws, "close")) as [number];
    assert.equal(versionClose, CLOSE_CODES.policy);
    // Silent sender: the listener gives up and closes.
    const silent = await connectSender(senderOpts);
    const [code] = (await once(silent, "close")) as [number];
    assert.equal(code, CLOSE_CODES.policy);
    // Garbage then disconnect.
    const rude = await connectSender(senderOpts);
    rude.send(Buffer.from([1, 0]));
    rude.terminate();
    await waitFor(() => errors.length >= 3, "three failures seen");
    assert.deepEqual(errors.slice(0, 2), ["RF_ERR_PREAMBLE_VERSION", "RF_ERR_PREAMBLE_TIMEOUT"]);
    assert.match(errors[2]!, /^RF_ERR_(TUNNEL_REFUSED|PREAMBLE_TIMEOUT)$/);
  });
});
