/**
 * Bounded memory while a tunnel is being set up (hardening item 9): a direct sender pushes data
 * right behind its preamble while the module is still resolving its target (a slow lookup). The
 * module's header reader pauses the relayed WebSocket once its small fixed bound is held, so what
 * it holds stays bounded, and every byte still arrives at the target in order once it connects.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import type { WebSocket } from "ws";
import { HEADER_HOLD_BYTES, type HeaderReaderStats } from "../../lib/hyco/header-reader.ts";
import { HybridConnectionListener } from "../../lib/hyco/listener.ts";
import { encodePreamble } from "../../lib/hyco/preamble.ts";
import { connectSender } from "../../lib/hyco/sender.ts";
import { createLogger } from "../../lib/log.ts";
import { MappingSchema } from "../../lib/twin/schema.ts";
import { allowlistFrom } from "../../modules/relayListener/src/allowlist.ts";
import { type ConnectionContext, serveConnection } from "../../modules/relayListener/src/connection.ts";
import { MappingRuntime } from "../../modules/relayListener/src/mapping-runtime.ts";
import { startRelayEmulator } from "../../sim/relay-emulator/index.ts";
import { waitFor } from "../helpers/index.ts";
import { startEcho } from "./module-harness.ts";

const PUSH_BYTES = 8 * 1024 * 1024;
const MESSAGE_BYTES = 64 * 1024;
const LOOKUP_DELAY_MS = 1_500;

test("a sender pushing while the target is resolved: the module pauses, holds at most its bound, loses nothing", async (t) => {
  const relay = await startRelayEmulator();
  t.after(() => relay.close());
  relay.admin.putHybridConnection("site-hold");
  const listen = relay.admin.putAuthorizationRule("site-hold", "listen", ["Listen"]).rule;
  const send = relay.admin.putAuthorizationRule("site-hold", "send", ["Send"]).rule;

  // The target answers with a digest of everything it got, so the test checks order and loss.
  const received = createHash("sha256");
  let receivedBytes = 0;
  const echo = await startEcho(t);
  echo.server.removeAllListeners("connection");
  echo.server.on("connection", (s) => {
    echo.sockets.add(s);
    s.on("data", (d: Buffer) => {
      received.update(d);
      receivedBytes += d.length;
    });
    s.on("error", () => {});
  });

  const mapping = new MappingRuntime("slow", MappingSchema.parse({ target: `slow.example:${echo.port}` }));
  const holds: HeaderReaderStats[] = [];
  const ctx: ConnectionContext = {
    findMapping: (name) => (name === "slow" ? mapping : undefined),
    // The slow part of setting up a tunnel: the target's name takes a while to resolve.
    allowlist: allowlistFrom("127.0.0.0/8:*\n", async () => {
      await new Promise((r) => setTimeout(r, LOOKUP_DELAY_MS));
      return [{ address: "127.0.0.1", family: 4 }];
    }),
    logger: createLogger("test", { level: "silent" }),
    preambleTimeoutMs: 5_000,
    keepAliveMs: 30_000,
    changed: () => {},
    onHeaderHold: (stats) => holds.push({ ...stats }),
  };
  const listener = new HybridConnectionListener({
    endpoint: relay.url,
    hybridConnection: "site-hold",
    keyName: "listen",
    key: listen.primaryKey,
  });
  t.after(() => listener.close());
  listener.on("accept", (req) => {
    void req.accept().then(
      (ws) => serveConnection(ws, ctx),
      () => {},
    );
  });
  listener.start();
  await waitFor(() => listener.state.status === "online", "listener online");

  const ws: WebSocket = await connectSender({
    endpoint: relay.url,
    hybridConnection: "site-hold",
    keyName: "send",
    key: send.primaryKey,
  });
  t.after(() => ws.terminate());
  const sent = createHash("sha256");
  ws.send(encodePreamble("slow"));
  for (let off = 0; off < PUSH_BYTES; off += MESSAGE_BYTES) {
    const chunk = Buffer.alloc(MESSAGE_BYTES, off / MESSAGE_BYTES);
    sent.update(chunk);
    ws.send(chunk);
  }

  await waitFor(() => holds.length === 1, "the module to connect its target", { timeoutMs: 15_000 });
  const hold = holds[0]!;
  t.diagnostic(`held at most ${hold.peakHeldBytes} bytes, paused ${hold.pauses} time(s)`);
  assert.ok(hold.pauses >= 1, "the relayed WebSocket was paused while the target was resolved");
  // The bound, plus what one socket read can still deliver after the pause (a few messages).
  assert.ok(
    hold.peakHeldBytes <= HEADER_HOLD_BYTES + 4 * MESSAGE_BYTES,
    `held ${hold.peakHeldBytes} bytes (bound ${HEADER_HOLD_BYTES})`,
  );
  await waitFor(() => receivedBytes === PUSH_BYTES, "every byte at the target", { timeoutMs: 30_000 });
  assert.equal(received.digest("hex"), sent.digest("hex"), "in order, nothing lost");
});
