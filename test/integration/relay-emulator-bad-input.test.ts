/**
 * Bad input from the network never crashes the emulator (relay-protocol.md §5, issue 2 §4):
 * garbage instead of HTTP, broken URLs and tokens, invalid handshakes, peers that vanish
 * mid-handshake or mid-rendezvous, malformed reject codes. After each, the emulator still relays.
 */
import assert from "node:assert/strict";
import { connect } from "node:net";
import { test } from "node:test";
import fc from "fast-check";
import { type RelayEmulator, startRelayEmulator } from "../../sim/relay-emulator/index.ts";
import { type CleanupContext, sleep, waitFor } from "../helpers/index.ts";
import { RawWsClient } from "../helpers/raw-ws-client.ts";
import {
  hcUrl,
  nextMessage,
  openListener,
  openWs,
  refusedStatus,
  relayedPair,
  rootCredentials,
  startSender,
  tokenFor,
} from "../helpers/relay-emulator-clients.ts";

function rawExchange(
  emu: RelayEmulator,
  bytes: string | Buffer,
  opts: { closeAfterWrite?: boolean } = {},
): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(emu.port, "127.0.0.1");
    let out = "";
    s.on("data", (d) => {
      out += d.toString("latin1");
    });
    s.on("error", () => resolve(out));
    s.on("close", () => resolve(out));
    s.on("connect", () => {
      s.write(bytes);
      if (opts.closeAfterWrite) s.destroy();
      else setTimeout(() => s.destroy(), 1_500).unref();
    });
  });
}

async function stillServes(t: CleanupContext, emu: RelayEmulator): Promise<void> {
  // Its listener must be the only one, or the sender could be offered to a dying one.
  await waitFor(() => emu.stats().listeners === 0, "earlier listeners to deregister");
  const listener = await openListener(t, emu, "hc");
  const { sender, rendezvous } = await relayedPair(t, emu, listener, "hc");
  sender.send("ping");
  assert.equal((await nextMessage(rendezvous)).data.toString(), "ping");
  listener.ws.close();
}

test("garbage and broken requests get 4xx answers and the emulator keeps serving", async (t) => {
  const emu = await startRelayEmulator();
  t.after(() => emu.close());
  emu.admin.putHybridConnection("hc");
  const answers = [
    await rawExchange(
      emu,
      Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff, 0, 1, 2, 3, 4, 0x0d, 0x0a, 0x0d, 0x0a]),
    ),
    await rawExchange(
      emu,
      "GET /$hc/hc HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    ),
    await rawExchange(
      emu,
      "GET /$hc/%E0%A4%A?sb-hc-action=listen HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    ),
    await rawExchange(
      emu,
      "GET /$hc/hc?sb-hc-action=listen HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
    ),
    await rawExchange(emu, `GET /$hc/hc HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(70_000)}\r\n\r\n`),
  ];
  for (const a of answers) assert.match(a, /^HTTP\/1\.1 4\d\d/);
  // a sender with an invalid Sec-WebSocket-Key never reaches a listener
  const badKey = await rawExchange(
    emu,
    `GET /$hc/hc?sb-hc-action=connect HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\nServiceBusAuthorization: ${tokenFor(emu, "hc", rootCredentials(emu))}\r\n\r\n`,
  );
  assert.match(badKey, /^HTTP\/1\.1 400/);
  // non-upgrade requests outside the admin API
  const plain = await fetch(`http://127.0.0.1:${emu.port}/$hc/hc`);
  assert.equal(plain.status, 404);
  await stillServes(t, emu);
});

test("bad tokens of every shape are 401s, never crashes", async (t) => {
  const emu = await startRelayEmulator();
  t.after(() => emu.close());
  emu.admin.putHybridConnection("hc");
  const url = hcUrl(emu, "hc", "sb-hc-action=listen");
  const tokens = [
    "",
    "Bearer abc",
    "SharedAccessSignature ",
    "SharedAccessSignature sr=%ZZ&sig=x&se=1&skn=RootManageSharedAccessKey",
    "SharedAccessSignature sr=a&sr=b&sig=x&se=99999999999&skn=RootManageSharedAccessKey",
    "SharedAccessSignature sr=http%3A%2F%2F127.0.0.1%2Fhc&sig=%%%&se=99999999999&skn=RootManageSharedAccessKey",
    "SharedAccessSignature sr=x&sig=y&se=notanumber&skn=RootManageSharedAccessKey",
    `SharedAccessSignature skn=${"k".repeat(5000)}`,
  ];
  for (const token of tokens) {
    const r = await refusedStatus(t, emu, url, token ? { headers: { ServiceBusAuthorization: token } } : {});
    assert.equal(r.status, 401, `token ${JSON.stringify(token.slice(0, 60))}`);
  }
  const q = await refusedStatus(t, emu, `${url}&sb-hc-token=%E0%A4%A`);
  assert.ok(q.status === 400 || q.status === 401);
  await stillServes(t, emu);
});

test("peers that vanish mid-handshake, mid-rendezvous or send bad reject codes", async (t) => {
  const emu = await startRelayEmulator();
  t.after(() => emu.close());
  emu.admin.putHybridConnection("hc");
  // half an HTTP request, then gone
  await rawExchange(emu, "GET /$hc/hc?sb-hc-action=listen HTTP/1.1\r\nHost: x\r\nUpgr", {
    closeAfterWrite: true,
  });
  // a listener whose control channel dies right after an accept is sent
  const listener = await openListener(t, emu, "hc");
  const senderP = startSender(t, emu, "hc");
  senderP.catch(() => undefined);
  const accept = await listener.nextAccept();
  listener.ws.terminate();
  // a bad reject code is refused (400) and the address stays usable for a real answer
  const bad = await refusedStatus(t, emu, `${accept.address}&sb-hc-statusCode=abc`);
  assert.equal(bad.status, 400);
  const bad2 = await refusedStatus(t, emu, `${accept.address}&sb-hc-statusCode=200`);
  assert.equal(bad2.status, 400);
  // a rendezvous peer that sends a request and disappears before reading the 101
  const raw = await RawWsClient.connect(t, accept.address);
  assert.equal(raw.status, 101);
  raw.socket.destroy();
  const err = await senderP.then(
    (ws) => new Promise<number>((r) => ws.once("close", (code) => r(code))),
    () => -1,
  );
  assert.ok(err === 1001 || err === -1, `sender ended with ${err}`);
  // a rendezvous socket sending garbage frames is closed; its sender sees a close, not a hang
  const l2 = await openListener(t, emu, "hc");
  const s2 = startSender(t, emu, "hc");
  const a2 = await l2.nextAccept();
  const raw2 = await RawWsClient.connect(t, a2.address);
  const sender2 = await s2;
  const senderClosed = new Promise<number>((r) => sender2.once("close", (code) => r(code)));
  raw2.socket.write(Buffer.from([0x8f, 0x80, 1, 2, 3, 4])); // fragmented control frame: protocol error
  await raw2.until((fs) => fs.some((f) => f.opcode === 0x8));
  assert.equal(raw2.closeFrame()?.code, 1002);
  raw2.socket.destroy();
  assert.ok([1001, 1002, 1006].includes(await senderClosed));
  await sleep(50);
  const ws = await openWs(t, emu, hcUrl(emu, "hc", "sb-hc-action=listen"), {
    headers: { ServiceBusAuthorization: tokenFor(emu, "hc", rootCredentials(emu)) },
  });
  ws.close();
  l2.ws.close();
  // stillServes needs its own listener to be the only one, or the sender may go to another
  await waitFor(() => emu.stats().listeners === 0, "earlier listeners to deregister");
  await stillServes(t, emu);
});

test("random bytes on control channels and relayed connections never crash the emulator (fast-check)", async (t) => {
  const emu = await startRelayEmulator();
  t.after(() => emu.close());
  emu.admin.putHybridConnection("hc");
  const token = tokenFor(emu, "hc", rootCredentials(emu));
  await fc.assert(
    fc.asyncProperty(
      fc.uint8Array({ minLength: 1, maxLength: 512 }),
      fc.boolean(),
      async (bytes, onRelay) => {
        if (onRelay) {
          const listener = await openListener(t, emu, "hc");
          const s = startSender(t, emu, "hc");
          const a = await listener.nextAccept();
          const raw = await RawWsClient.connect(t, a.address);
          const sender = await s;
          sender.on("error", () => undefined);
          raw.socket.write(Buffer.from(bytes));
          raw.socket.destroy();
          listener.ws.close();
        } else {
          const raw = await RawWsClient.connect(t, hcUrl(emu, "hc", "sb-hc-action=listen"), {
            ServiceBusAuthorization: token,
          });
          raw.socket.write(Buffer.from(bytes));
          await sleep(5);
          raw.socket.destroy();
        }
        await waitFor(() => emu.stats().listeners === 0, "the listener to deregister");
      },
    ),
    { numRuns: 40 },
  );
  await stillServes(t, emu);
});

test("wss://: plaintext HTTP, garbage and aborted TLS handshakes never crash it", async (t) => {
  const emu = await startRelayEmulator({ tls: true });
  t.after(() => emu.close());
  emu.admin.putHybridConnection("hc");
  await rawExchange(emu, "GET /$hc/hc?sb-hc-action=listen HTTP/1.1\r\nHost: x\r\n\r\n");
  await rawExchange(emu, Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]));
  await rawExchange(emu, Buffer.from([0x16, 0x03, 0x01]), { closeAfterWrite: true });
  await stillServes(t, emu);
});
