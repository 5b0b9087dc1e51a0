/**
 * Listener behaviour against a tiny in-test control-channel server (pure unit: no relay logic),
 * for what the emulator cannot produce on purpose: garbage frames, a relay that never pongs.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { describe, it, type TestContext } from "node:test";
import { WebSocketServer, type WebSocket as WsSocket } from "ws";
import { HybridConnectionListener } from "../../lib/hyco/listener.ts";
import { waitFor } from "../helpers/index.ts";

async function fakeRelay(t: TestContext, opts: { autoPong?: boolean } = {}) {
  const channels: WsSocket[] = [];
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, autoPong: opts.autoPong ?? true });
  await once(wss, "listening");
  wss.on("connection", (ws) => channels.push(ws));
  t.after(() => {
    for (const c of wss.clients) c.terminate();
    return new Promise((r) => wss.close(r));
  });
  const url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`;
  return { wss, channels, url };
}

describe("listener (unit, fake control channel)", () => {
  it("ignores garbage, unknown actions and broken accepts without crashing or reconnecting", async (t) => {
    const relay = await fakeRelay(t);
    const l = new HybridConnectionListener({
      endpoint: relay.url,
      hybridConnection: "hc",
      keyName: "k",
      key: "v",
    });
    t.after(() => l.close());
    const accepts: string[] = [];
    l.on("accept", (req) => accepts.push(req.id));
    l.start();
    await waitFor(() => l.state.status === "online", "online");
    const ch = relay.channels[0]!;
    for (const frame of [
      "not json",
      "[1,2,3]",
      "null",
      '{"accept":null}',
      '{"accept":{"id":"x"}}',
      '{"accept":{"address":"http://evil/","id":"x"}}',
      '{"frobnicate":{"a":1}}',
      '{"request":{"id":"r","requestTarget":"/","method":"GET"}}',
      "{".repeat(10000),
    ])
      ch.send(frame);
    ch.send(Buffer.from([0xff, 0xfe, 0x00]), { binary: true });
    // A valid accept with no connectHeaders at all (hyco-ws crashes on that) still reaches us.
    ch.send(
      JSON.stringify({
        accept: { address: `${relay.url}/$hc/hc?sb-hc-action=accept&sb-hc-id=ok`, id: "ok" },
      }),
    );
    await waitFor(() => accepts.length === 1, "the one good accept");
    assert.deepEqual(accepts, ["ok"]);
    assert.equal(l.state.status, "online");
    assert.equal(l.attempts, 1);
  });

  it("answers an HTTP-mode request with 501 on the control channel instead of ignoring it", async (t) => {
    const relay = await fakeRelay(t);
    const l = new HybridConnectionListener({
      endpoint: relay.url,
      hybridConnection: "hc",
      keyName: "k",
      key: "v",
    });
    t.after(() => l.close());
    l.start();
    await waitFor(() => l.state.status === "online", "online");
    const ch = relay.channels[0]!;
    const answers: unknown[] = [];
    ch.on("message", (d: Buffer, isBinary: boolean) => {
      if (!isBinary) answers.push(JSON.parse(d.toString()));
    });
    ch.send(JSON.stringify({ request: { id: "req-1", requestTarget: "/x", method: "POST", body: true } }));
    ch.send(Buffer.from("the request body"), { binary: true });
    await waitFor(() => answers.length === 1, "the listener's response");
    const { response } = answers[0] as { response: Record<string, unknown> };
    assert.equal(response.requestId, "req-1");
    assert.equal(response.statusCode, 501);
    assert.equal(response.body, false);
    assert.match(String(response.statusDescription), /Not Implemented/);
    assert.equal(l.state.status, "online");
  });

  it("survives an accept handler that throws", async (t) => {
    const relay = await fakeRelay(t);
    const l = new HybridConnectionListener({
      endpoint: relay.url,
      hybridConnection: "hc",
      keyName: "k",
      key: "v",
    });
    t.after(() => l.close());
    let calls = 0;
    l.on("accept", () => {
      calls++;
      throw new Error("handler bug");
    });
    l.start();
    await waitFor(() => l.state.status === "online", "online");
    const accept = (id: string) =>
      JSON.stringify({ accept: { address: `${relay.url}/$hc/hc?sb-hc-action=accept&sb-hc-id=${id}`, id } });
    relay.channels[0]!.send(accept("a"));
    relay.channels[0]!.send(accept("b"));
    await waitFor(() => calls === 2, "both accepts handled");
    assert.equal(l.state.status, "online");
    assert.equal(l.attempts, 1);
  });

  it("declares a relay that stops answering pings dead and reconnects", async (t) => {
    const relay = await fakeRelay(t, { autoPong: false });
    const l = new HybridConnectionListener({
      endpoint: relay.url,
      hybridConnection: "hc",
      keyName: "k",
      key: "v",
      pingIntervalMs: 100,
      pongTimeoutMs: 150,
      retry: { periodMs: 50 },
    });
    t.after(() => l.close());
    const errors: string[] = [];
    l.on("state", (s) => s.lastError && errors.push(s.lastError));
    l.start();
    await waitFor(() => l.attempts >= 2 && relay.channels.length >= 2, "a reconnect after the missing pong");
    assert.match(errors[0] ?? "", /no pong within 150 ms/);
  });

  it("sends renewToken frames carrying a fresh SAS token", async (t) => {
    const relay = await fakeRelay(t);
    const frames: string[] = [];
    relay.wss.on("connection", (ws) => ws.on("message", (d: Buffer) => frames.push(d.toString())));
    const l = new HybridConnectionListener({
      endpoint: relay.url,
      hybridConnection: "hc",
      keyName: "k",
      key: "v",
      tokenTtlSeconds: 2,
    });
    t.after(() => l.close());
    l.start();
    await waitFor(() => frames.length >= 1, "a renewal", { timeoutMs: 5000 });
    const msg = JSON.parse(frames[0]!) as { renewToken: { token: string } };
    assert.match(msg.renewToken.token, /^SharedAccessSignature sr=.*&skn=k$/);
    l.updateCredentials("k2", "v2");
    await waitFor(() => frames.some((f) => f.includes("skn=k2")), "renewal with the new key");
  });

  it("never has more than one attempt in flight and stops everything on close()", async (t) => {
    const l = new HybridConnectionListener({
      endpoint: "ws://127.0.0.1:1",
      hybridConnection: "hc",
      keyName: "k",
      key: "v",
      retry: { periodMs: 30 },
    });
    const inFlight: number[] = [];
    l.on("attempt", () => inFlight.push(Date.now()));
    l.start();
    l.start(); // idempotent
    await waitFor(() => l.attempts >= 4, "a few attempts");
    await l.close();
    const after = l.attempts;
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(l.attempts, after, "no attempt after close()");
    assert.equal(l.state.status, "closed");
    void t;
  });
});
