/**
 * The emulator's core flow over real loopback sockets with raw ws@8 clients: listen, connect,
 * accept, relaying both ways, reject, rendezvous expiry, single use, and the sender held until accept.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import WebSocket from "ws";
import { startRelayEmulator } from "../../sim/relay-emulator/index.ts";
import { sleep, waitFor } from "../helpers/index.ts";
import {
  closeOf,
  hcUrl,
  nextMessage,
  openListener,
  openWs,
  refusedStatus,
  relayedPair,
  startSender,
  UpgradeRefused,
  upgradeResponses,
} from "../helpers/relay-emulator-clients.ts";

test("a sender reaches a listener and messages flow both ways, text stays text", async (t) => {
  const emu = await startRelayEmulator();
  t.after(() => emu.close());
  emu.admin.putHybridConnection("site-a");
  const listener = await openListener(t, emu, "site-a");
  const { sender, rendezvous, accept } = await relayedPair(t, emu, listener, "site-a");

  assert.match(accept.address, /^ws:\/\/127\.0\.0\.1:\d+\/\$hc\/site-a\?sb-hc-action=accept&sb-hc-id=/);
  assert.ok(accept.id.length > 0);
  const keyHeader = Object.entries(accept.connectHeaders).find(
    ([k]) => k.toLowerCase() === "sec-websocket-key",
  );
  assert.ok(keyHeader, "connectHeaders carries Sec-WebSocket-Key");
  assert.ok(
    !Object.keys(accept.connectHeaders).some((k) => k.toLowerCase() === "servicebusauthorization"),
    "the token header is not forwarded",
  );
  assert.equal(accept.remoteEndpoint?.address, "127.0.0.1");

  sender.send("hello", { binary: false });
  const m1 = await nextMessage(rendezvous);
  assert.equal(m1.data.toString(), "hello");
  assert.equal(m1.isBinary, false);
  rendezvous.send(Buffer.from([0, 1, 2, 255]));
  const m2 = await nextMessage(sender);
  assert.deepEqual([...m2.data], [0, 1, 2, 255]);
  assert.equal(m2.isBinary, true);

  const stats = emu.stats();
  assert.equal(stats.accepts, 1);
  assert.equal(stats.activeConnections, 1);
  assert.equal(stats.hybridConnections["site-a"]?.listeners, 1);

  const closed = closeOf(rendezvous);
  sender.close(4001, "bye");
  assert.deepEqual(await closed, { code: 4001, reason: "bye" });
  await waitFor(() => emu.stats().activeConnections === 0, "relayed connection to end");
});

test("the sender's upgrade is held until the listener accepts", async (t) => {
  const emu = await startRelayEmulator();
  t.after(() => emu.close());
  emu.admin.putHybridConnection("held");
  const listener = await openListener(t, emu, "held");
  let opened = false;
  const senderP = startSender(t, emu, "held").then((ws) => {
    opened = true;
    return ws;
  });
  const accept = await listener.nextAccept();
  await sleep(300);
  assert.equal(opened, false, "no 101 before the listener accepts");
  await openWs(t, emu, accept.address);
  const sender = await senderP;
  assert.equal(sender.readyState, WebSocket.OPEN);
});

test("reject: listener gets 410, sender gets the chosen status and description", async (t) => {
  const emu = await startRelayEmulator();
  t.after(() => emu.close());
  emu.admin.putHybridConnection("rej");
  const listener = await openListener(t, emu, "rej");
  const senderP = startSender(t, emu, "rej");
  senderP.catch(() => undefined);
  const accept = await listener.nextAccept();
  const rejected = await refusedStatus(
    t,
    emu,
    `${accept.address}&sb-hc-statusCode=418&sb-hc-statusDescription=${encodeURIComponent("Not today")}`,
  );
  assert.equal(rejected.status, 410);
  const err = await senderP.then(
    () => assert.fail("sender should be refused"),
    (e: unknown) => e,
  );
  assert.ok(err instanceof UpgradeRefused);
  assert.equal(err.status, 418);
  assert.equal(err.statusMessage, "Not today");
  assert.equal(emu.stats().rejects, 1);
});

test("rendezvous addresses expire (sender 504, late accept 403) and are single-use", async (t) => {
  const emu = await startRelayEmulator({ rendezvousTimeoutMs: 300 });
  t.after(() => emu.close());
  emu.admin.putHybridConnection("exp");
  const listener = await openListener(t, emu, "exp");
  const senderP = startSender(t, emu, "exp");
  senderP.catch(() => undefined);
  const accept = await listener.nextAccept();
  const err = await senderP.then(
    () => assert.fail("sender should time out"),
    (e: unknown) => e,
  );
  assert.ok(err instanceof UpgradeRefused);
  assert.equal(err.status, 504);
  assert.equal((await refusedStatus(t, emu, accept.address)).status, 403);

  // single use
  const { accept: a2 } = await relayedPair(t, emu, listener, "exp");
  assert.equal((await refusedStatus(t, emu, a2.address)).status, 403);
  // guessing: a forged id is refused too
  assert.equal(
    (await refusedStatus(t, emu, hcUrl(emu, "exp", `sb-hc-action=accept&sb-hc-id=${a2.id}`))).status,
    403,
  );
});

test("the timeout status is configurable (404, Azure-like)", async (t) => {
  const emu = await startRelayEmulator({ rendezvousTimeoutMs: 200, rendezvousTimeoutStatus: 404 });
  t.after(() => emu.close());
  emu.admin.putHybridConnection("exp404");
  const listener = await openListener(t, emu, "exp404");
  const senderP = startSender(t, emu, "exp404");
  senderP.catch(() => undefined);
  await listener.nextAccept();
  const err = await senderP.catch((e: unknown) => e);
  assert.ok(err instanceof UpgradeRefused);
  assert.equal(err.status, 404);
});

test("a sender that leaves while held: the listener's rendezvous is closed with 1001", async (t) => {
  const emu = await startRelayEmulator();
  t.after(() => emu.close());
  emu.admin.putHybridConnection("gone");
  const listener = await openListener(t, emu, "gone");
  const sender = new WebSocket(hcUrl(emu, "gone", "sb-hc-action=connect"), {
    headers: {
      ServiceBusAuthorization: (await import("../helpers/relay-emulator-clients.ts")).tokenFor(emu, "gone", {
        keyName: emu.manageKeyName,
        key: emu.manageKey,
      }),
    },
  });
  sender.on("error", () => undefined);
  const accept = await listener.nextAccept();
  sender.terminate();
  await sleep(100);
  const rendezvous = await openWs(t, emu, accept.address);
  const closed = await closeOf(rendezvous);
  assert.equal(closed.code, 1001);
});

test("the listener's subprotocol is echoed to both legs; no permessage-deflate on either", async (t) => {
  const emu = await startRelayEmulator();
  t.after(() => emu.close());
  emu.admin.putHybridConnection("proto");
  const listener = await openListener(t, emu, "proto");
  const senderP = startSender(t, emu, "proto", undefined, { protocols: ["alpha", "beta"] });
  const accept = await listener.nextAccept();
  const offered = Object.entries(accept.connectHeaders).find(
    ([k]) => k.toLowerCase() === "sec-websocket-protocol",
  );
  assert.match(offered?.[1] ?? "", /^alpha, ?beta$/);
  const rendezvous = await openWs(t, emu, accept.address, {
    protocols: ["beta"],
    headers: { "X-CustomHeader": "from-listener" },
  });
  const sender = await senderP;
  assert.equal(
    upgradeResponses.get(sender)?.headers["x-customheader"],
    "from-listener",
    "listener's header reaches the sender",
  );
  assert.equal(rendezvous.protocol, "beta");
  assert.equal(sender.protocol, "beta");
  assert.equal(sender.extensions, "");
  assert.equal(rendezvous.extensions, "");
});
