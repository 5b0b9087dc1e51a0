/**
 * What the emulator does to bytes in flight: close codes carried end to end, genuine half-close
 * (the first closer keeps receiving until the other side's close), abnormal drops → 1001 promptly,
 * 16 MB messages unsplit, and bounded buffering when a reader is slow (peak measured).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type WebSocket from "ws";
import { startRelayEmulator } from "../../sim/relay-emulator/index.ts";
import { waitFor } from "../helpers/index.ts";
import { RawWsClient } from "../helpers/raw-ws-client.ts";
import {
  closeOf,
  hcUrl,
  nextMessage,
  openListener,
  openWs,
  relayedPair,
  rootCredentials,
  startSender,
  tokenFor,
} from "../helpers/relay-emulator-clients.ts";

const CHUNK = 64 * 1024;

test("half-close: the sender closes first and still receives the listener's whole answer", async (t) => {
  const emu = await startRelayEmulator();
  t.after(() => emu.close());
  emu.admin.putHybridConnection("hc");
  const listener = await openListener(t, emu, "hc");
  const senderP = startSender(t, emu, "hc");
  const accept = await listener.nextAccept();
  // The listener side is a raw client: it answers a close frame only when it is done sending.
  const rendezvous = await RawWsClient.connect(t, accept.address);
  assert.equal(rendezvous.status, 101);
  const sender = await senderP;
  let received = 0;
  sender.on("message", (d: Buffer) => {
    received += d.length;
  });
  const senderClosed = closeOf(sender);

  sender.send(Buffer.from("request"));
  sender.close(1000, "shutdown");
  await rendezvous.until((fs) => fs.some((f) => f.opcode === 0x8));
  assert.deepEqual(rendezvous.closeFrame(), { code: 1000, reason: "shutdown" });
  assert.equal(rendezvous.frames[0]?.payload.toString(), "request");

  // After the sender's close: 2 MiB of answer, then the listener's own close.
  for (let i = 0; i < 32; i++) rendezvous.sendFrame(0x2, Buffer.alloc(CHUNK, i));
  rendezvous.sendClose(1000, "answered");
  const closed = await senderClosed;
  assert.equal(received, 32 * CHUNK, "every byte sent after the half-close arrived");
  assert.deepEqual(closed, { code: 1000, reason: "answered" });
  await waitFor(() => rendezvous.ended, "the relay to end the listener's TCP connection");
  await waitFor(() => emu.stats().activeConnections === 0, "connection to be released");
});

test("half-close: the listener closes first and the sender keeps sending", async (t) => {
  const emu = await startRelayEmulator();
  t.after(() => emu.close());
  emu.admin.putHybridConnection("hc");
  const listener = await openListener(t, emu, "hc");
  const senderRaw = RawWsClient.connect(t, hcUrl(emu, "hc", "sb-hc-action=connect"), {
    ServiceBusAuthorization: tokenFor(emu, "hc", rootCredentials(emu)),
  });
  const accept = await listener.nextAccept();
  const rendezvous = await openWs(t, emu, accept.address);
  const sender = await senderRaw;
  assert.equal(sender.status, 101);
  let received = 0;
  rendezvous.on("message", (d: Buffer) => {
    received += d.length;
  });
  const rvClosed = closeOf(rendezvous);
  rendezvous.close(4000, "listener done");
  await sender.until((fs) => fs.some((f) => f.opcode === 0x8));
  assert.deepEqual(sender.closeFrame(), { code: 4000, reason: "listener done" });
  for (let i = 0; i < 16; i++) sender.sendFrame(0x2, Buffer.alloc(CHUNK, 7));
  sender.sendClose(1000, "");
  assert.deepEqual(await rvClosed, { code: 1000, reason: "" });
  assert.equal(received, 16 * CHUNK);
});

test("an abnormal drop on either side closes the other with 1001 promptly", async (t) => {
  const emu = await startRelayEmulator();
  t.after(() => emu.close());
  emu.admin.putHybridConnection("hc");
  const listener = await openListener(t, emu, "hc");
  for (const dropper of ["sender", "rendezvous"] as const) {
    const pair = await relayedPair(t, emu, listener, "hc");
    const other: WebSocket = dropper === "sender" ? pair.rendezvous : pair.sender;
    const closed = closeOf(other);
    pair[dropper].terminate();
    const c = await closed;
    assert.equal(c.code, 1001);
    assert.match(c.reason, /disconnected/);
  }
  await waitFor(() => emu.stats().activeConnections === 0, "connections released");
});

test("16 MB messages cross unsplit, in both directions, text and binary", async (t) => {
  const emu = await startRelayEmulator();
  t.after(() => emu.close());
  emu.admin.putHybridConnection("big");
  const listener = await openListener(t, emu, "big");
  const { sender, rendezvous } = await relayedPair(t, emu, listener, "big");
  const big = Buffer.alloc(16 * 1024 * 1024, 0x5a);
  big[0] = 1;
  big[big.length - 1] = 2;
  sender.send(big);
  const m = await nextMessage(rendezvous, 30_000);
  assert.equal(m.isBinary, true);
  assert.equal(m.data.length, big.length);
  assert.ok(m.data.equals(big));
  const text = "é".repeat(4 * 1024 * 1024);
  rendezvous.send(text);
  const back = await nextMessage(sender, 30_000);
  assert.equal(back.isBinary, false);
  assert.equal(back.data.toString(), text);
});

test("backpressure: a slow reader pauses the writer; the relay's buffer stays bounded", async (t) => {
  const highWaterMarkBytes = 512 * 1024;
  const emu = await startRelayEmulator({ highWaterMarkBytes, lowWaterMarkBytes: 128 * 1024 });
  t.after(() => emu.close());
  emu.admin.putHybridConnection("slow");
  const listener = await openListener(t, emu, "slow");
  const { sender, rendezvous } = await relayedPair(t, emu, listener, "slow");
  rendezvous.pause(); // the reader stops reading: its TCP window fills, then the relay's buffer
  const message = Buffer.alloc(CHUNK, 1);
  const total = 48 * 1024 * 1024;
  let sent = 0;
  // Send as fast as the sender's own socket takes it.
  const pump = async () => {
    while (sent < total) {
      sender.send(message);
      sent += message.length;
      if (sender.bufferedAmount > 4 * 1024 * 1024) await new Promise((r) => setTimeout(r, 5));
      if (sent % (4 * 1024 * 1024) === 0) await new Promise((r) => setImmediate(r));
    }
  };
  const pumping = pump();
  await waitFor(() => emu.stats().backpressurePauses > 0, "the relay to pause the sender leg");
  // While the reader is stopped, the sender is held back (it cannot have pushed everything through).
  await new Promise((r) => setTimeout(r, 500));
  const peakWhilePaused = emu.stats().peakBufferedBytes;
  let received = 0;
  rendezvous.on("message", (d: Buffer) => {
    received += d.length;
  });
  rendezvous.resume();
  await pumping;
  await waitFor(() => received === total, "every byte to arrive", { timeoutMs: 45_000 });
  const peak = emu.stats().peakBufferedBytes;
  t.diagnostic(
    `relay peak bufferedAmount: ${peak} bytes (while paused ${peakWhilePaused}); bound ${highWaterMarkBytes} + one message`,
  );
  assert.ok(peak <= highWaterMarkBytes + 2 * CHUNK, `peak ${peak} exceeds the bound`);
  assert.ok(emu.stats().backpressurePauses >= 1);
});

test("a half-closed leg whose peer has gone is cut after closeTimeoutMs (no leaked connections)", async (t) => {
  const emu = await startRelayEmulator({ closeTimeoutMs: 300 });
  t.after(() => emu.close());
  emu.admin.putHybridConnection("hc");
  const listener = await openListener(t, emu, "hc");
  const senderRaw = RawWsClient.connect(t, hcUrl(emu, "hc", "sb-hc-action=connect"), {
    ServiceBusAuthorization: tokenFor(emu, "hc", rootCredentials(emu)),
  });
  const accept = await listener.nextAccept();
  const rendezvous = await RawWsClient.connect(t, accept.address);
  const sender = await senderRaw;
  sender.sendClose(1000, "done");
  await rendezvous.until((fs) => fs.some((f) => f.opcode === 0x8));
  // The sender vanishes (RST) before the listener answers. A plain FIN after a close frame is a TCP
  // half-close and keeps the leg writable, so an abrupt reset is what "gone" looks like here.
  sender.socket.resetAndDestroy();
  // the listener never answers either: the relay must not keep its leg forever
  await waitFor(() => rendezvous.ended, "the relay to cut the silent half-closed leg", { timeoutMs: 5_000 });
  await waitFor(() => emu.stats().activeConnections === 0, "connection released");
});
