/**
 * Fault injection (in-process `emulator.faults`): drop listeners with a code, refuse or delay the
 * next rendezvous, cut relayed connections mid-stream, and outages (reset or refused TCP) that end.
 */
import assert from "node:assert/strict";
import { connect } from "node:net";
import { test } from "node:test";
import { startRelayEmulator } from "../../sim/relay-emulator/index.ts";
import { sleep, waitFor } from "../helpers/index.ts";
import {
  closeOf,
  openListener,
  relayedPair,
  startSender,
  UpgradeRefused,
} from "../helpers/relay-emulator-clients.ts";

test("dropListener closes one (or all) control channels with the given code", async (t) => {
  const emu = await startRelayEmulator();
  t.after(() => emu.close());
  emu.admin.putHybridConnection("hc");
  const a = await openListener(t, emu, "hc");
  const b = await openListener(t, emu, "hc");
  const c = await openListener(t, emu, "hc");
  assert.equal(emu.faults.dropListener("hc", { code: 1011 }), 1);
  assert.equal(emu.stats().listeners, 2);
  assert.equal(emu.faults.dropListener("hc", { all: true, code: 4321, reason: "bye" }), 2);
  const codes = (await Promise.all([a.closed, b.closed, c.closed])).map((x) => x.code).sort();
  assert.deepEqual(codes, [1011, 4321, 4321]);
  assert.equal(emu.faults.dropListener("missing"), 0);
  // codes no frame may carry: dropped without a close frame in process, refused over HTTP
  const d = await openListener(t, emu, "hc");
  assert.equal(emu.faults.dropListener("hc", { code: 1006 }), 1);
  assert.equal((await d.closed).code, 1006);
  await assert.rejects(emu.faults.apply({ action: "dropListener", hybridConnection: "hc", code: 1005 }));
});

test("refuseRendezvous answers the next senders with a status; delayRendezvous holds the accept", async (t) => {
  const emu = await startRelayEmulator();
  t.after(() => emu.close());
  emu.admin.putHybridConnection("hc");
  const listener = await openListener(t, emu, "hc");
  emu.faults.refuseRendezvous({ status: 502, description: "injected", count: 2 });
  for (let i = 0; i < 2; i++) {
    const err = await startSender(t, emu, "hc").catch((e: unknown) => e);
    assert.ok(err instanceof UpgradeRefused);
    assert.equal(err.status, 502);
    assert.equal(err.statusMessage, "injected");
  }
  await relayedPair(t, emu, listener, "hc"); // third one goes through

  emu.faults.delayRendezvous(800);
  const senderP = startSender(t, emu, "hc");
  senderP.catch(() => undefined);
  await sleep(300);
  assert.equal(listener.frames.length, 1, "accept not yet sent during the delay");
  await listener.nextAccept(5_000);
  assert.equal(listener.frames.length, 2);
});

test("cutConnections closes both legs of live connections mid-stream (1011, or no close frame)", async (t) => {
  const emu = await startRelayEmulator();
  t.after(() => emu.close());
  emu.admin.putHybridConnection("hc");
  const listener = await openListener(t, emu, "hc");
  const p1 = await relayedPair(t, emu, listener, "hc");
  const streaming = setInterval(
    () => p1.sender.readyState === p1.sender.OPEN && p1.sender.send(Buffer.alloc(1024)),
    5,
  );
  t.after(() => clearInterval(streaming));
  await sleep(50);
  const closes = [closeOf(p1.sender), closeOf(p1.rendezvous)];
  assert.equal(emu.faults.cutConnections({ hybridConnection: "hc" }), 1);
  const codes = (await Promise.all(closes)).map((c) => c.code);
  assert.deepEqual(codes, [1011, 1011]);
  clearInterval(streaming);

  const p2 = await relayedPair(t, emu, listener, "hc");
  const abrupt = [closeOf(p2.sender), closeOf(p2.rendezvous)];
  emu.faults.cutConnections({ code: "terminate" });
  for (const c of await Promise.all(abrupt)) assert.equal(c.code, 1006);
  await waitFor(() => emu.stats().activeConnections === 0, "connections released");
});

test("outage (reset): listeners dropped, new TCP connections reset and counted, then service resumes", async (t) => {
  const emu = await startRelayEmulator();
  t.after(() => emu.close());
  emu.admin.putHybridConnection("hc");
  const listener = await openListener(t, emu, "hc");
  await emu.faults.outage(1_000, { mode: "reset" });
  assert.equal((await listener.closed).code, 1006);
  const attempt = await openListener(t, emu, "hc").catch((e: unknown) => e);
  assert.ok(attempt instanceof Error);
  assert.ok(emu.stats().tcpRefusedDuringOutage >= 1);
  await waitFor(
    () =>
      openListener(t, emu, "hc").then(
        () => true,
        () => false,
      ),
    "the emulator to serve again after the outage",
  );
});

test("outage (refuse): the port closes (ECONNREFUSED) and reopens on the same port", async (t) => {
  const emu = await startRelayEmulator();
  t.after(() => emu.close());
  emu.admin.putHybridConnection("hc");
  await emu.faults.outage(800, { mode: "refuse" });
  const refused = await new Promise<string>((resolve) => {
    const s = connect(emu.port, "127.0.0.1");
    s.on("connect", () => {
      s.destroy();
      resolve("connected");
    });
    s.on("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? "error"));
  });
  assert.equal(refused, "ECONNREFUSED");
  await waitFor(
    () =>
      openListener(t, emu, "hc").then(
        () => true,
        () => false,
      ),
    "the port to reopen",
  );
});
