/**
 * Control-channel lifecycle (relay-protocol.md §1.5-1.7, §5.9): pings answered, renewToken (valid →
 * new expiry, invalid → 1008), expiry → 1008, entity deleted → 1001, unknown JSON and garbage
 * ignored, optional idle timeout, and listen attempts counted per source.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { audienceFor, createSasToken } from "../../lib/hyco/sas.ts";
import { startRelayEmulator } from "../../sim/relay-emulator/index.ts";
import { waitFor } from "../helpers/index.ts";
import { RawWsClient } from "../helpers/raw-ws-client.ts";
import {
  hcUrl,
  openListener,
  refusedStatus,
  relayedPair,
  rootCredentials,
  tokenFor,
} from "../helpers/relay-emulator-clients.ts";

test("pings are answered and unknown or malformed control frames are ignored", async (t) => {
  const emu = await startRelayEmulator();
  t.after(() => emu.close());
  emu.admin.putHybridConnection("hc");
  const listener = await openListener(t, emu, "hc");
  const pong = new Promise<Buffer>((r) => listener.ws.once("pong", r));
  listener.ws.ping("keepalive");
  assert.equal((await pong).toString(), "keepalive");
  for (const junk of [
    "not json",
    "[1,2]",
    "null",
    '{"request":{}}',
    '{"renewTokenX":1}',
    "{",
    '{"accept":{}}',
  ]) {
    listener.ws.send(junk);
  }
  listener.ws.send(Buffer.from([0xff, 0x00, 0x13]));
  // still registered and still serving
  const { sender } = await relayedPair(t, emu, listener, "hc");
  assert.ok(sender);
  assert.equal(emu.stats().listeners, 1);
});

test("renewToken: a valid token moves the expiry, an invalid one closes with 1008", async (t) => {
  const emu = await startRelayEmulator();
  t.after(() => emu.close());
  emu.admin.putHybridConnection("hc");
  const rule = emu.admin.putAuthorizationRule("hc", "listen", ["Listen"]).rule;
  const cred = { keyName: "listen", key: rule.primaryKey };
  // The first token expires in 2 s; a renewal for an hour keeps the channel open past that.
  const listener = await openListener(t, emu, "hc", cred, { ttlSeconds: 2 });
  listener.ws.send(JSON.stringify({ renewToken: { token: tokenFor(emu, "hc", cred, 3600) } }));
  await new Promise((r) => setTimeout(r, 3_000));
  assert.equal(listener.ws.readyState, listener.ws.OPEN, "renewed channel survives the first token's expiry");

  // a renewal with a Send-only rule (valid token, wrong right) closes with 1008
  const send = emu.admin.putAuthorizationRule("hc", "send", ["Send"]).rule;
  listener.ws.send(
    JSON.stringify({ renewToken: { token: tokenFor(emu, "hc", { keyName: "send", key: send.primaryKey }) } }),
  );
  assert.equal((await listener.closed).code, 1008);

  // forged and shapeless renewals too
  for (const body of [
    { token: tokenFor(emu, "hc", { keyName: "listen", key: "forged" }) },
    { token: 42 },
    "x",
  ]) {
    const l = await openListener(t, emu, "hc", cred);
    l.ws.send(JSON.stringify({ renewToken: body }));
    assert.equal((await l.closed).code, 1008);
  }
  assert.ok((emu.stats().controlChannelsClosed["1008"] ?? 0) >= 4);
});

test("an unrenewed token expires: the control channel closes with 1008", async (t) => {
  const emu = await startRelayEmulator();
  t.after(() => emu.close());
  emu.admin.putHybridConnection("hc");
  const listener = await openListener(t, emu, "hc", rootCredentials(emu), { ttlSeconds: 1 });
  const closed = await listener.closed;
  assert.equal(closed.code, 1008);
  assert.match(closed.reason, /expired/);
  assert.equal(emu.stats().listeners, 0);
  // an already-expired token is refused at the handshake (401)
  const token = createSasToken(audienceFor(emu.endpoint, "hc"), emu.manageKeyName, emu.manageKey, {
    nowSeconds: Math.floor(Date.now() / 1000) - 10,
    ttlSeconds: 5,
  });
  const r = await refusedStatus(t, emu, hcUrl(emu, "hc", "sb-hc-action=listen"), {
    headers: { ServiceBusAuthorization: token },
  });
  assert.equal(r.status, 401);
});

test("deleting the hybrid connection closes its listeners with 1001", async (t) => {
  const emu = await startRelayEmulator();
  t.after(() => emu.close());
  emu.admin.putHybridConnection("doomed");
  const a = await openListener(t, emu, "doomed");
  const b = await openListener(t, emu, "doomed");
  assert.equal(emu.admin.deleteHybridConnection("doomed"), true);
  assert.equal((await a.closed).code, 1001);
  assert.equal((await b.closed).code, 1001);
  assert.equal(emu.admin.deleteHybridConnection("doomed"), false);
});

test("idle timeout (opt-in) drops silent control channels; pings keep them alive", async (t) => {
  const emu = await startRelayEmulator({ controlIdleTimeoutMs: 600 });
  t.after(() => emu.close());
  emu.admin.putHybridConnection("hc");
  const silent = await openListener(t, emu, "hc");
  const chatty = await openListener(t, emu, "hc");
  const timer = setInterval(() => chatty.ws.ping(), 150);
  t.after(() => clearInterval(timer));
  assert.equal((await silent.closed).code, 1001);
  assert.equal(chatty.ws.readyState, chatty.ws.OPEN);
});

test("listen attempts are counted per source and can be rate limited", async (t) => {
  const emu = await startRelayEmulator({ listenRateLimit: 3, listenRateWindowMs: 60_000 });
  t.after(() => emu.close());
  emu.admin.putHybridConnection("hc");
  const statuses: number[] = [];
  for (let i = 0; i < 5; i++) {
    // no token: each attempt fails, like a reconnect storm
    statuses.push((await refusedStatus(t, emu, hcUrl(emu, "hc", "sb-hc-action=listen"))).status);
  }
  assert.deepEqual(statuses, [401, 401, 401, 429, 429]);
  const stats = emu.stats();
  assert.equal(stats.listenAttempts, 5);
  assert.equal(stats.listenAttemptsBySource["127.0.0.1"], 5);
  assert.equal(stats.listenRateLimited, 2);
});

test("control frames larger than the limit close that channel only (1009); the emulator serves on", async (t) => {
  const emu = await startRelayEmulator({ maxControlFrameBytes: 1024 });
  t.after(() => emu.close());
  emu.admin.putHybridConnection("hc");
  const listener = await openListener(t, emu, "hc");
  listener.ws.on("error", () => undefined);
  listener.ws.send("x".repeat(4096));
  assert.equal((await listener.closed).code, 1009);
  // a raw client sending a reserved opcode gets a protocol error close, nothing else breaks
  const raw = await RawWsClient.connect(t, hcUrl(emu, "hc", "sb-hc-action=listen"), {
    ServiceBusAuthorization: tokenFor(emu, "hc", rootCredentials(emu)),
  });
  assert.equal(raw.status, 101);
  raw.sendFrame(0x3, Buffer.from("reserved"));
  await raw.until((fs) => fs.some((f) => f.opcode === 0x8));
  assert.equal(raw.closeFrame()?.code, 1002);
  await openListener(t, emu, "hc");
  await waitFor(() => emu.stats().listeners === 1, "one healthy listener");
});
