/**
 * Interop with the real `hyco-ws@1.0.5` through the relay emulator, both directions:
 * - a hyco-ws listener receives a connection from our sender and from a hyco-ws sender;
 * - a hyco-ws sender reaches our listener.
 * Bytes are checked end to end. hyco-ws is used with the project-side guards of
 * relay-protocol.md §5: URIs built by hand, 'error' handlers everywhere (closing the server in
 * its handler to stop its reconnect storm), a token function with a 2 h TTL, and writes only
 * after the rendezvous socket's 'open'.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it, type TestContext } from "node:test";
import hyco, { type LegacyWebSocket } from "hyco-ws";
import { HybridConnectionListener } from "../../lib/hyco/listener.ts";
import { connectSender } from "../../lib/hyco/sender.ts";
import { type RelayEmulator, startRelayEmulator } from "../../sim/relay-emulator/index.ts";
import { waitFor } from "../helpers/index.ts";

const HC = "site-interop";

async function setup(t: TestContext) {
  const relay = await startRelayEmulator();
  t.after(() => relay.close());
  relay.admin.putHybridConnection(HC);
  const listen = relay.admin.putAuthorizationRule(HC, "listen", ["Listen"]).rule;
  const send = relay.admin.putAuthorizationRule(HC, "send", ["Send"]).rule;
  return { relay, listen, send };
}

/** A hyco-ws listener that echoes every message, with the guards. */
async function hycoEchoListener(t: TestContext, relay: RelayEmulator, key: string) {
  const listenUri = `${relay.url}/$hc/${HC}?sb-hc-action=listen`;
  const errors: unknown[] = [];
  const server = new hyco.RelayedServer({
    server: listenUri,
    token: () => hyco.createRelayToken(`http://127.0.0.1/${HC}`, "listen", key, 7200),
  });
  server.on("error", (err: unknown) => {
    errors.push(err);
    server.close(); // stops hyco-ws's own double reconnect (relay-protocol.md §3.5)
  });
  server.on("connection", (ws: LegacyWebSocket) => {
    ws.on("error", () => {});
    // hyco-ws emits 'connection' while the socket is still CONNECTING: only echo once open.
    ws.once("open", () => {
      ws.on("message", (data: Buffer) => ws.send(Buffer.from(data), { binary: true }));
    });
  });
  t.after(() => server.close());
  await new Promise<void>((resolve, reject) => {
    server.once("listening", () => resolve());
    server.once("error", reject);
  });
  return { server, errors };
}

function echoRoundTrip(
  send: (b: Buffer) => void,
  onMessage: (fn: (d: Buffer) => void) => void,
  payload: Buffer,
): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  return new Promise((resolve) => {
    onMessage((d) => {
      parts.push(Buffer.from(d));
      n += d.length;
      if (n >= payload.length) resolve(Buffer.concat(parts));
    });
    for (let i = 0; i < payload.length; i += 65536) send(payload.subarray(i, i + 65536));
  });
}

describe("interop with hyco-ws@1.0.5", () => {
  it("a hyco-ws listener receives a connection from our sender", async (t) => {
    const { relay, listen, send } = await setup(t);
    const { errors } = await hycoEchoListener(t, relay, listen.primaryKey);
    const ws = await connectSender({
      endpoint: relay.url,
      hybridConnection: HC,
      keyName: "send",
      key: send.primaryKey,
    });
    const payload = randomBytes(512 * 1024 + 9);
    const echoed = await echoRoundTrip(
      (b) => ws.send(b),
      (fn) => ws.on("message", fn),
      payload,
    );
    assert.ok(echoed.equals(payload));
    ws.close();
    assert.deepEqual(errors, []);
  });

  it("a hyco-ws listener receives a connection from a hyco-ws sender", async (t) => {
    const { relay, listen, send } = await setup(t);
    await hycoEchoListener(t, relay, listen.primaryKey);
    const uri = `${relay.url}/$hc/${HC}?sb-hc-action=connect`;
    const token = hyco.createRelayToken(`http://127.0.0.1/${HC}`, "send", send.primaryKey, 7200);
    const client = await new Promise<LegacyWebSocket>((resolve, reject) => {
      const c = hyco.relayedConnect(uri, token, (open) => resolve(open));
      c.on("error", reject);
    });
    t.after(() => client.terminate());
    const payload = randomBytes(256 * 1024);
    const echoed = await echoRoundTrip(
      (b) => client.send(b, { binary: true }),
      (fn) => client.on("message", fn),
      payload,
    );
    assert.ok(echoed.equals(payload));
  });

  it("a hyco-ws sender reaches our listener", async (t) => {
    const { relay, listen, send } = await setup(t);
    const listener = new HybridConnectionListener({
      endpoint: relay.url,
      hybridConnection: HC,
      keyName: "listen",
      key: listen.primaryKey,
    });
    t.after(() => listener.close());
    listener.on("accept", async (req) => {
      assert.ok(req.connectHeaders["sec-websocket-key"] ?? req.connectHeaders["Sec-WebSocket-Key"]);
      const ws = await req.accept();
      ws.on("message", (d: Buffer) => ws.send(d));
    });
    listener.start();
    await waitFor(() => listener.state.status === "online", "our listener online");
    const uri = `${relay.url}/$hc/${HC}?sb-hc-action=connect`;
    const token = hyco.createRelayToken(`http://127.0.0.1/${HC}`, "send", send.primaryKey, 7200);
    const client = await new Promise<LegacyWebSocket>((resolve, reject) => {
      const c = hyco.relayedConnect(uri, token, (open) => resolve(open));
      c.on("error", reject);
    });
    t.after(() => client.terminate());
    const payload = randomBytes(700 * 1024 + 1);
    const echoed = await echoRoundTrip(
      (b) => client.send(b, { binary: true }),
      (fn) => client.on("message", fn),
      payload,
    );
    assert.ok(echoed.equals(payload));
  });
});
