/**
 * The unmodified reference peer, hyco-ws@1.0.5 (ws@1.1.5 inside), against the emulator: it must
 * register as a listener and accept through the emulator's accept messages (it crashes on a
 * missing connectHeaders or Sec-WebSocket-Key), and its sender must reach a raw ws@8 listener.
 * Its URI helpers hardcode wss/443, so URLs are built by hand (relay-protocol.md §3.3).
 */
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { test } from "node:test";
import { startRelayEmulator } from "../../sim/relay-emulator/index.ts";
import { waitFor } from "../helpers/index.ts";
import {
  hcUrl,
  nextMessage,
  openListener,
  openWs,
  rootCredentials,
  startSender,
  tokenFor,
} from "../helpers/relay-emulator-clients.ts";

/** The part of hyco-ws's untyped API these tests use (ws@1.x event shapes). */
interface HycoSocket {
  on(event: "message", fn: (data: string | Buffer, flags: { binary?: boolean }) => void): void;
  on(event: "open" | "close" | "error", fn: (...args: unknown[]) => void): void;
  send(data: Buffer | string, options?: { binary?: boolean }): void;
  close(): void;
  terminate(): void;
}
interface HycoServer {
  on(event: "listening" | "error" | "close", fn: (...args: unknown[]) => void): void;
  close(): void;
}
interface HycoWs {
  createRelayedServer(
    options: { server: string; token: string | (() => string) },
    onConnection: (ws: HycoSocket) => void,
  ): HycoServer;
  relayedConnect(address: string, token: string, onOpen: (ws: HycoSocket) => void): HycoSocket;
}

const hyco = createRequire(import.meta.url)("hyco-ws") as HycoWs;

test("a hyco-ws listener registers, accepts a ws@8 sender, and bytes cross both ways", async (t) => {
  const emu = await startRelayEmulator();
  t.after(() => emu.close());
  emu.admin.putHybridConnection("hyco");
  const token = tokenFor(emu, "hyco", rootCredentials(emu));
  let listening = false;
  const server = hyco.createRelayedServer(
    { server: hcUrl(emu, "hyco", "sb-hc-action=listen"), token },
    (ws) => {
      ws.on("error", () => undefined);
      ws.on("message", (data) =>
        ws.send(Buffer.concat([Buffer.from("echo:"), Buffer.from(data)]), { binary: true }),
      );
    },
  );
  server.on("error", () => server.close()); // hyco-ws's own reconnect is unsafe (§3.5)
  server.on("listening", () => {
    listening = true;
  });
  t.after(() => server.close());
  await waitFor(() => listening && emu.stats().listeners === 1, "hyco-ws to register");
  const sender = await startSender(t, emu, "hyco");
  // hyco-ws emits 'connection' before its rendezvous socket is open; give it a message to echo
  await waitFor(() => emu.stats().activeConnections === 1, "the rendezvous to complete");
  sender.send(Buffer.from("hello"));
  const reply = await nextMessage(sender);
  assert.equal(reply.data.toString(), "echo:hello");
});

test("a hyco-ws sender reaches a raw ws@8 listener", async (t) => {
  const emu = await startRelayEmulator();
  t.after(() => emu.close());
  emu.admin.putHybridConnection("hyco");
  const listener = await openListener(t, emu, "hyco");
  const opened = new Promise<HycoSocket>((resolve) => {
    const ws = hyco.relayedConnect(
      hcUrl(emu, "hyco", "sb-hc-action=connect"),
      tokenFor(emu, "hyco", rootCredentials(emu)),
      resolve,
    );
    ws.on("error", () => undefined);
    t.after(() => ws.terminate());
  });
  const accept = await listener.nextAccept();
  // the accept carries the ws@1.1.5 sender's key and its (never negotiated) deflate offer
  assert.ok(Object.keys(accept.connectHeaders).some((k) => k.toLowerCase() === "sec-websocket-key"));
  const rendezvous = await openWs(t, emu, accept.address);
  const hycoSender = await opened;
  const got = new Promise<string>((resolve) => hycoSender.on("message", (d) => resolve(String(d))));
  hycoSender.send(Buffer.from("from hyco"));
  assert.equal((await nextMessage(rendezvous)).data.toString(), "from hyco");
  rendezvous.send("to hyco");
  assert.equal(await got, "to hyco");
});
