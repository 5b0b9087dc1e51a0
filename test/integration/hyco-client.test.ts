/**
 * The project's listener and sender against the real relay emulator (separate sockets, loopback).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import net, { type AddressInfo } from "node:net";
import { describe, it, type TestContext } from "node:test";
import type { TLSSocket } from "node:tls";
import type { WebSocket } from "ws";
import { HybridConnectionListener, type ListenerOptions } from "../../lib/hyco/listener.ts";
import { startPump } from "../../lib/hyco/pump.ts";
import { connectSender } from "../../lib/hyco/sender.ts";
import { startRelayEmulator } from "../../sim/relay-emulator/index.ts";
import { waitFor } from "../helpers/index.ts";

const HC = "site-t1";

async function setup(t: TestContext, opts: Parameters<typeof startRelayEmulator>[0] = {}) {
  const relay = await startRelayEmulator(opts);
  t.after(() => relay.close());
  relay.admin.putHybridConnection(HC);
  const listen = relay.admin.putAuthorizationRule(HC, "listen", ["Listen"]).rule;
  const send = relay.admin.putAuthorizationRule(HC, "send", ["Send"]).rule;
  const startListener = (extra: Partial<ListenerOptions> = {}) => {
    const l = new HybridConnectionListener({
      endpoint: relay.url,
      hybridConnection: HC,
      keyName: "listen",
      key: listen.primaryKey,
      ...extra,
    });
    t.after(() => l.close());
    return l.start();
  };
  const sender = (extra: Partial<Parameters<typeof connectSender>[0]> = {}) =>
    connectSender({
      endpoint: relay.url,
      hybridConnection: HC,
      keyName: "send",
      key: send.primaryKey,
      ...extra,
    });
  return { relay, listen, send, startListener, sender };
}

function tlsSocketOf(ws: WebSocket): TLSSocket {
  const socket = (ws as unknown as { _socket: TLSSocket | null })._socket;
  assert.ok(socket, "open WebSocket has a socket");
  return socket;
}

function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  return p.then(
    () => undefined,
    (err: unknown) => (err as { code?: string }).code,
  );
}

function echoOnAccept(listener: HybridConnectionListener): void {
  listener.on("accept", (req) => {
    req.accept().then(
      (ws) => {
        ws.on("message", (d: Buffer) => ws.send(d));
      },
      () => {},
    );
  });
}

function roundTrip(ws: WebSocket, payload: Buffer): Promise<Buffer> {
  const parts: Buffer[] = [];
  let got = 0;
  return new Promise((resolve) => {
    ws.on("message", (d: Buffer) => {
      parts.push(d);
      got += d.length;
      if (got >= payload.length) resolve(Buffer.concat(parts));
    });
    for (let i = 0; i < payload.length; i += 65536) ws.send(payload.subarray(i, i + 65536));
  });
}

describe("hyco client against the relay emulator", () => {
  it("listener and sender exchange bytes exactly; state is observable", async (t) => {
    const { startListener, sender } = await setup(t);
    const listener = startListener();
    const states: string[] = [];
    listener.on("state", (s) => states.push(s.status));
    echoOnAccept(listener);
    await waitFor(() => listener.state.status === "online", "listener online");
    const ws = await sender();
    const payload = randomBytes(1024 * 1024 + 3);
    assert.ok((await roundTrip(ws, payload)).equals(payload));
    ws.close();
    await listener.close();
    assert.equal(listener.state.status, "closed");
    assert.deepEqual(states.slice(-2), ["online", "closed"]);
  });

  it("works over wss with the emulator's private CA (zero-mask frames by default there)", async (t) => {
    const { relay, startListener, sender } = await setup(t, { tls: true });
    assert.ok(relay.ca, "emulator CA");
    const listener = startListener({ endpoint: relay.endpoint, ca: relay.ca });
    echoOnAccept(listener);
    await waitFor(() => listener.state.status === "online", "listener online over wss");
    const ws = await sender({ endpoint: relay.endpoint, ca: relay.ca });
    const payload = randomBytes(300_000);
    assert.ok((await roundTrip(ws, payload)).equals(payload));
    ws.close();
    // The next connection resumes the relay's TLS session (lib/hyco/tls-sessions.ts): no full
    // handshake per relayed connection. The rendezvous of the listener's accepts resumes too.
    const again = await sender({ endpoint: relay.endpoint, ca: relay.ca });
    assert.equal(tlsSocketOf(again).isSessionReused(), true, "sender's second TLS connection resumed");
    assert.ok((await roundTrip(again, payload)).equals(payload));
    again.close();
    // Without the CA the TLS handshake fails: a typed, non-fatal error (a session cached for a
    // connection that trusted the emulator's CA is never offered to one that does not).
    assert.equal(await codeOf(sender({ endpoint: relay.endpoint })), "RF_ERR_RELAY_UNREACHABLE");
  });

  it("maps relay answers to typed sender errors", async (t) => {
    const { startListener, sender, relay } = await setup(t);
    assert.equal(await codeOf(sender()), "RF_ERR_RELAY_NO_LISTENER");
    assert.equal(await codeOf(sender({ key: "wrong-key" })), "RF_ERR_RELAY_UNAUTHORIZED");
    relay.admin.putAuthorizationRule(HC, "listenonly", ["Listen"]);
    const lo = relay.admin.getAuthorizationRule(HC, "listenonly")!;
    assert.equal(
      await codeOf(sender({ keyName: "listenonly", key: lo.primaryKey })),
      "RF_ERR_RELAY_FORBIDDEN",
    );
    const closedPort = net.createServer();
    closedPort.listen(0, "127.0.0.1");
    await once(closedPort, "listening");
    const port = (closedPort.address() as AddressInfo).port;
    await new Promise((r) => closedPort.close(r));
    assert.equal(await codeOf(sender({ endpoint: `ws://127.0.0.1:${port}` })), "RF_ERR_RELAY_UNREACHABLE");
    const listener = startListener();
    listener.on("accept", () => {
      /* never answers */
    });
    await waitFor(() => listener.state.status === "online", "listener online");
    assert.equal(await codeOf(sender({ timeoutMs: 300 })), "RF_ERR_RELAY_TIMEOUT");
  });

  it("rejects with the listener's status and description; the relay confirms with 410", async (t) => {
    const { startListener, sender } = await setup(t);
    const listener = startListener();
    const rejected: Promise<void>[] = [];
    listener.on("accept", (req) => {
      rejected.push(req.reject(503, "port name not allowed"));
    });
    await waitFor(() => listener.state.status === "online", "listener online");
    const err = await sender().then(
      () => assert.fail("sender connected"),
      (e: unknown) => e as { code: string; status: number; message: string },
    );
    assert.equal(err.code, "RF_ERR_RELAY_REJECTED");
    assert.equal(err.status, 503);
    assert.match(err.message, /port name not allowed/);
    await Promise.all(rejected); // resolved: the relay answered 410
  });

  it("accept() twice is a coded error, and a listener with no handler rejects", async (t) => {
    const { startListener, sender } = await setup(t);
    const listener = startListener();
    await waitFor(() => listener.state.status === "online", "listener online");
    assert.equal(await codeOf(sender()), "RF_ERR_RELAY_REJECTED");
    let second: Promise<string | undefined> | undefined;
    listener.on("accept", (req) => {
      void req.accept().then((ws) => ws.close());
      second = codeOf(req.accept());
    });
    const ws = await sender();
    ws.close();
    assert.equal(await second, "RF_ERR_RELAY_ACCEPT_TWICE");
  });

  it("renews its token and rotates keys without dropping established connections", async (t) => {
    const { startListener, sender, relay } = await setup(t);
    // 2 s tokens renewed every second: a listener that failed to renew would be closed with 1008.
    const listener = startListener({ tokenTtlSeconds: 2 });
    echoOnAccept(listener);
    await waitFor(() => listener.state.status === "online", "listener online");
    const established = await sender();
    let attempts = listener.attempts;
    await new Promise((r) => setTimeout(r, 3500));
    assert.equal(listener.state.status, "online");
    assert.equal(listener.attempts, attempts, "no reconnect: renewal kept the channel alive");
    // Rotate: the secondary key becomes the one in use, then the primary is regenerated.
    const rule = relay.admin.getAuthorizationRule(HC, "listen")!;
    listener.updateCredentials("listen", rule.secondaryKey);
    await new Promise((r) => setTimeout(r, 300));
    relay.admin.regenerateKeys(HC, "listen", "PrimaryKey");
    attempts = listener.attempts;
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(listener.state.status, "online");
    assert.equal(listener.attempts, attempts);
    const payload = randomBytes(1000);
    assert.ok((await roundTrip(established, payload)).equals(payload), "old connection still works");
    const fresh = await sender();
    assert.ok((await roundTrip(fresh, payload)).equals(payload), "new connections accepted");
  });

  it("several listeners on one hybrid connection share the load (HA)", async (t) => {
    const { startListener, sender, relay } = await setup(t);
    const a = startListener();
    const b = startListener();
    const hits = { a: 0, b: 0 };
    for (const [name, l] of [
      ["a", a],
      ["b", b],
    ] as const) {
      l.on("accept", (req) => {
        hits[name]++;
        void req.accept().then((ws) => ws.on("message", (d: Buffer) => ws.send(d)));
      });
    }
    await waitFor(() => a.state.status === "online" && b.state.status === "online", "both online");
    assert.equal(relay.admin.getHybridConnection(HC)?.listenerCount, 2);
    for (let i = 0; i < 20; i++) {
      const ws = await sender();
      assert.equal((await roundTrip(ws, Buffer.from("x"))).toString(), "x");
      ws.close();
    }
    assert.ok(hits.a > 0 && hits.b > 0, `both used: ${JSON.stringify(hits)}`);
    await a.close();
    const ws = await sender();
    assert.equal((await roundTrip(ws, Buffer.from("y"))).toString(), "y");
  });

  it("keeps retrying on its slot while the hybrid connection does not exist (404 is not fatal)", async (t) => {
    const { startListener, relay, listen } = await setup(t);
    relay.admin.putAuthorizationRule(undefined, "nslisten", ["Listen"], { primaryKey: listen.primaryKey });
    const listener = startListener({
      hybridConnection: "site-later",
      keyName: "nslisten",
      retry: { periodMs: 150 },
    });
    await waitFor(() => listener.attempts >= 3, "three attempts");
    assert.equal(listener.state.status, "reconnecting");
    assert.match(listener.state.lastError ?? "", /RF_ERR_RELAY_NO_LISTENER|404/);
    relay.admin.putHybridConnection("site-later");
    await waitFor(() => listener.state.status === "online", "online once the HC exists");
  });

  it("survives garbage on the control channel and pings a silent relay", async (t) => {
    const { startListener, sender, relay } = await setup(t, { controlIdleTimeoutMs: 600 });
    const listener = startListener({ pingIntervalMs: 150 });
    echoOnAccept(listener);
    await waitFor(() => listener.state.status === "online", "listener online");
    const attempts = listener.attempts;
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(listener.attempts, attempts, "pings kept the idle channel alive");
    const ws = await sender();
    assert.equal((await roundTrip(ws, Buffer.from("z"))).toString(), "z");
    void relay;
  });

  it("pumps a TCP target through listener and sender end to end", async (t) => {
    const { startListener, sender } = await setup(t);
    const target = net.createServer({ allowHalfOpen: true }, (s) => {
      const parts: Buffer[] = [];
      s.on("data", (d: Buffer) => parts.push(d));
      s.on("end", () => s.end(Buffer.concat(parts).reverse()));
    });
    target.listen(0, "127.0.0.1");
    await once(target, "listening");
    t.after(() => target.close());
    const listener = startListener();
    listener.on("accept", async (req) => {
      const ws = await req.accept();
      const sock = net.connect({ port: (target.address() as AddressInfo).port, allowHalfOpen: true });
      startPump(ws, sock);
    });
    await waitFor(() => listener.state.status === "online", "listener online");
    const ws = await sender();
    const payload = randomBytes(2 * 1024 * 1024);
    const parts: Buffer[] = [];
    ws.on("message", (d: Buffer) => parts.push(d));
    const closed = once(ws, "close");
    for (let i = 0; i < payload.length; i += 65536) ws.send(payload.subarray(i, i + 65536));
    ws.close(1000); // FIN: the answer still comes back (half-close through the emulator)
    await closed;
    assert.ok(Buffer.concat(parts).equals(Buffer.from(payload).reverse()));
  });

  it("keeps retrying with a typed lastError when its key is wrong", async (t) => {
    const { startListener } = await setup(t);
    const l = startListener({ key: "bad", retry: { periodMs: 75 } });
    await waitFor(() => l.attempts >= 2, "retries");
    assert.match(l.state.lastError ?? "", /RF_ERR_RELAY_UNAUTHORIZED/);
  });
});
