/**
 * The pump over a real ws@8 pair on loopback:
 *   client ──TCP──> front [pump A: ws client] ══ws══> back [pump B: ws server side] ──TCP──> target
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import net, { type AddressInfo } from "node:net";
import { describe, it, type TestContext } from "node:test";
import { WebSocket, WebSocketServer } from "ws";
import { type Pump, type PumpOptions, type PumpResult, startPump } from "../../lib/hyco/pump.ts";
import { sleep, waitFor } from "../helpers/index.ts";

interface Rig {
  connect(): Promise<net.Socket>;
  /** Target-side sockets as they arrive. */
  targets: net.Socket[];
  frontPumps: Pump[];
  backPumps: Pump[];
  frontWs: WebSocket[];
  backWs: WebSocket[];
}

async function listen(server: net.Server | WebSocketServer): Promise<number> {
  if (server instanceof WebSocketServer) {
    await once(server, "listening");
    return (server.address() as AddressInfo).port;
  }
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return (server.address() as AddressInfo).port;
}

async function rig(t: TestContext, opts: PumpOptions = {}, onTarget?: (s: net.Socket) => void): Promise<Rig> {
  const r: Rig = {
    connect: async () => {
      throw new Error("not ready");
    },
    targets: [],
    frontPumps: [],
    backPumps: [],
    frontWs: [],
    backWs: [],
  };
  const target = net.createServer({ allowHalfOpen: true }, (s) => {
    r.targets.push(s);
    s.on("error", () => {});
    onTarget?.(s);
  });
  const targetPort = await listen(target);
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false });
  wss.on("connection", (ws) => {
    r.backWs.push(ws);
    const sock = net.connect({ port: targetPort, host: "127.0.0.1", allowHalfOpen: true });
    sock.on("error", () => {});
    r.backPumps.push(startPump(ws, sock, opts));
  });
  const wsPort = await listen(wss);
  const front = net.createServer({ allowHalfOpen: true }, (client) => {
    client.pause();
    const ws = new WebSocket(`ws://127.0.0.1:${wsPort}/`, { perMessageDeflate: false });
    r.frontWs.push(ws);
    ws.on("error", () => {});
    ws.once("open", () => {
      r.frontPumps.push(startPump(ws, client, opts));
      client.resume();
    });
  });
  const frontPort = await listen(front);
  r.connect = async () => {
    const s = net.connect({ port: frontPort, host: "127.0.0.1", allowHalfOpen: true });
    s.on("error", () => {});
    await once(s, "connect");
    return s;
  };
  t.after(async () => {
    for (const s of r.targets) s.destroy();
    for (const ws of [...r.frontWs, ...r.backWs]) ws.terminate();
    for (const c of wss.clients) c.terminate();
    await Promise.all([
      new Promise((res) => target.close(res)),
      new Promise((res) => front.close(res)),
      new Promise((res) => wss.close(res)),
    ]);
  });
  return r;
}

/** Resolves on 'close' whether or not an 'error' (ECONNRESET) came first. */
function closed(s: net.Socket): Promise<void> {
  return new Promise((res) => {
    if (s.destroyed) res();
    else s.once("close", () => res());
  });
}

function collect(s: net.Socket): Promise<Buffer> {
  const parts: Buffer[] = [];
  s.on("data", (d: Buffer) => parts.push(d));
  return new Promise((res) => s.once("end", () => res(Buffer.concat(parts))));
}

describe("pump", () => {
  it("carries bytes exactly both ways and reports the counts", async (t) => {
    const r = await rig(t);
    const client = await r.connect();
    const up = randomBytes(3 * 1024 * 1024 + 17);
    const down = randomBytes(2 * 1024 * 1024 + 5);
    const target = await waitFor(() => r.targets[0], "target connection");
    const atTarget = collect(target);
    const atClient = collect(client);
    client.end(up);
    target.end(down);
    assert.ok((await atTarget).equals(up));
    assert.ok((await atClient).equals(down));
    const [front, back] = (await Promise.all([r.frontPumps[0]!.done, r.backPumps[0]!.done])) as PumpResult[];
    assert.equal(front!.endedBy, "completed");
    assert.equal(back!.endedBy, "completed");
    assert.equal(front!.bytesToWebSocket, up.length);
    assert.equal(front!.bytesToSocket, down.length);
    assert.equal(back!.bytesToSocket, up.length);
    assert.equal(back!.bytesToWebSocket, down.length);
  });

  it("sends frames of at most 64 KiB", async (t) => {
    const r = await rig(t);
    const client = await r.connect();
    const target = await waitFor(() => r.targets[0], "target connection");
    const sizes: number[] = [];
    const ws = await waitFor(() => r.backWs[0], "back ws");
    ws.on("message", (d: Buffer) => sizes.push(d.length));
    const atTarget = collect(target);
    client.end(randomBytes(1024 * 1024));
    await atTarget;
    assert.ok(sizes.length > 0);
    assert.ok(Math.max(...sizes) <= 65536, `largest frame ${Math.max(...sizes)}`);
    target.end();
  });

  it("half-closes: the client shuts its write side and still receives the whole answer", async (t) => {
    const answer = randomBytes(1024 * 1024);
    const r = await rig(t, {}, (s) => {
      const parts: Buffer[] = [];
      s.on("data", (d: Buffer) => parts.push(d));
      s.once("end", () => {
        // The request is complete only after FIN; answer afterwards, slowly, in pieces.
        const request = Buffer.concat(parts);
        s.write(request.subarray(0, 10));
        setTimeout(() => s.end(answer), 200);
      });
    });
    const client = await r.connect();
    const response = collect(client);
    client.end(Buffer.from("hello, then FIN"));
    const body = await response;
    assert.equal(body.subarray(0, 10).toString(), "hello, the");
    assert.ok(body.subarray(10).equals(answer));
    const results = await Promise.all([r.frontPumps[0]!.done, r.backPumps[0]!.done]);
    for (const res of results) assert.equal(res.endedBy, "completed");
  });

  it("half-closes the other way: the target's FIN arrives while the client keeps sending", async (t) => {
    const r = await rig(t, {}, (s) => {
      s.end("bye");
    });
    const client = await r.connect();
    const parts: Buffer[] = [];
    client.on("data", (d: Buffer) => parts.push(d));
    await once(client, "end");
    assert.equal(Buffer.concat(parts).toString(), "bye");
    const target = r.targets[0]!;
    const atTarget = collect(target);
    const late = randomBytes(512 * 1024);
    client.end(late);
    assert.ok((await atTarget).equals(late));
  });

  it("bounds what it buffers when the reader is slow, and delivers everything later", async (t) => {
    const highWaterBytes = 256 * 1024;
    const r = await rig(t, { highWaterBytes }, (s) => s.pause());
    const client = await r.connect();
    const target = await waitFor(() => r.targets[0], "target connection");
    const total = 48 * 1024 * 1024;
    const payload = randomBytes(total);
    let peakWs = 0;
    let peakSock = 0;
    const probe = setInterval(() => {
      for (const ws of r.frontWs) peakWs = Math.max(peakWs, ws.bufferedAmount);
      const back = r.backPumps.length ? r.targets[0] : undefined;
      if (back) peakSock = Math.max(peakSock, back.writableLength);
    }, 2);
    t.after(() => clearInterval(probe));
    client.write(payload);
    client.end();
    // Let the pipeline fill up while the target reads nothing.
    await sleep(1500);
    const backSock = (r.backWs[0] as unknown as { _socket: net.Socket })._socket;
    // The pumps hold at most the bound plus a frame or a read chunk; the rest waits in the client.
    const slack = 3 * 65536;
    assert.ok(peakWs <= highWaterBytes + slack, `front ws buffered up to ${peakWs}`);
    assert.ok(peakSock <= highWaterBytes + slack, `target socket buffered up to ${peakSock}`);
    assert.ok(client.writableLength > 0, "the client itself is held back");
    assert.ok(backSock.isPaused(), "the relay-side socket is paused");
    const got = collect(target);
    target.resume();
    const received = await got;
    clearInterval(probe);
    assert.equal(received.length, total);
    assert.ok(received.equals(payload));
    target.end();
  });

  it("propagates a reset of the target to the client promptly", async (t) => {
    const r = await rig(t);
    const client = await r.connect();
    const target = await waitFor(() => r.targets[0], "target connection");
    client.write("x");
    await once(target, "data");
    const clientClosed = closed(client);
    target.resetAndDestroy();
    await clientClosed;
    const [front, back] = await Promise.all([r.frontPumps[0]!.done, r.backPumps[0]!.done]);
    assert.equal(back.endedBy, "socket-error");
    assert.equal(front.endedBy, "websocket-error");
    assert.equal(front.closeCode, 1011);
  });

  it("propagates a client that vanishes to the target, and a dropped websocket to both", async (t) => {
    const r = await rig(t);
    const client = await r.connect();
    const target = await waitFor(() => r.targets[0], "target connection");
    const targetClosed = closed(target);
    // RST, not FIN: a FIN would be a half-close and the target could legitimately stay open.
    client.resetAndDestroy();
    await targetClosed;
    const client2 = await r.connect();
    const target2 = await waitFor(() => r.targets[1], "second target connection");
    const closes = [closed(client2), closed(target2)];
    // A 1006 drop in the middle (no close frame).
    r.frontWs[1]!.terminate();
    await Promise.all(closes);
    const res = await r.backPumps[1]!.done;
    assert.equal(res.endedBy, "websocket-error");
  });

  it("leaves no listeners or timers behind, and abort() tears both sides down", async (t) => {
    const r = await rig(t, { idleTimeoutMs: 60_000 });
    const client = await r.connect();
    const target = await waitFor(() => r.targets[0], "target connection");
    const closes = [closed(client), closed(target)];
    await waitFor(() => r.frontPumps[0], "front pump");
    r.frontPumps[0]!.abort("test");
    await Promise.all(closes);
    const res = await r.frontPumps[0]!.done;
    assert.equal(res.endedBy, "aborted");
    const ws = r.frontWs[0]!;
    assert.equal(ws.listenerCount("message"), 0);
    assert.equal(ws.close, WebSocket.prototype.close);
  });

  it("ends an idle connection after idleTimeoutMs", async (t) => {
    const r = await rig(t, { idleTimeoutMs: 200 });
    const client = await r.connect();
    await waitFor(() => r.targets[0], "target connection");
    await closed(client);
    const results = await Promise.all([r.frontPumps[0]!.done, r.backPumps[0]!.done]);
    // Both ends run the same timer: whichever fires first ends it, the other sees the close.
    assert.ok(
      results.some((res) => res.endedBy === "idle-timeout"),
      JSON.stringify(results.map((res) => res.endedBy)),
    );
  });

  it("reusable: a clean end of both directions leaves the WebSocket open at a boundary", async (t) => {
    const r = await rig(t, { reusable: true });
    const client = await r.connect();
    const target = await waitFor(() => r.targets[0], "target connection");
    const up = randomBytes(300_000);
    const down = randomBytes(200_000);
    const atTarget = collect(target);
    const atClient = collect(client);
    client.end(up);
    target.end(down);
    assert.ok((await atTarget).equals(up));
    assert.ok((await atClient).equals(down));
    const results = await Promise.all([r.frontPumps[0]!.done, r.backPumps[0]!.done]);
    for (const res of results) {
      assert.equal(res.endedBy, "completed");
      assert.equal(res.reusable, true);
    }
    const [front, back] = [r.frontWs[0]!, r.backWs[0]!];
    assert.equal(front.readyState, WebSocket.OPEN);
    assert.equal(back.readyState, WebSocket.OPEN);
    assert.equal(front.close, WebSocket.prototype.close, "the pump let go of the WebSocket");
    // The owner takes what was held behind the end and reads on: the next stream arrives.
    assert.deepEqual(r.backPumps[0]!.takeNextStream(), []);
    const next = once(back, "message");
    front.send(Buffer.from("next stream"));
    assert.equal(String((await next)[0]), "next stream");
  });

  it("reusable: a reset still tears both sides down", async (t) => {
    const r = await rig(t, { reusable: true });
    const client = await r.connect();
    const target = await waitFor(() => r.targets[0], "target connection");
    const clientClosed = closed(client);
    target.resetAndDestroy();
    await clientClosed;
    const results = await Promise.all([r.frontPumps[0]!.done, r.backPumps[0]!.done]);
    for (const res of results) assert.equal(res.reusable, undefined);
    await waitFor(() => r.frontWs[0]!.readyState === WebSocket.CLOSED, "websocket closed");
  });
});
