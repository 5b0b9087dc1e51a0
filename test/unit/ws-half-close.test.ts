/**
 * lib/hyco/ws-half-close.ts against the installed ws: the start-up check passes, and each piece of
 * the shim does what the pump and the relay emulator rely on, on a real ws pair over loopback.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { describe, it, type TestContext } from "node:test";
import { WebSocket, WebSocketServer } from "ws";
import {
  checkInstalledWs,
  interceptPeerClose,
  keepReceivingWhileClosing,
  rawSocket,
  takeOverClose,
} from "../../lib/hyco/ws-half-close.ts";
import { waitFor } from "../helpers/index.ts";

const require = createRequire(import.meta.url);
const installed = require("ws/package.json") as { version: string };

/** A connected client/server ws pair on loopback. */
async function pair(t: TestContext): Promise<{ client: WebSocket; server: WebSocket }> {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false });
  await once(wss, "listening");
  t.after(() => wss.close());
  const accepted = once(wss, "connection") as Promise<[WebSocket]>;
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
  t.after(() => client.terminate());
  const [[server]] = await Promise.all([accepted, once(client, "open")]);
  t.after(() => server.terminate());
  return { client, server };
}

describe("ws half-close shim", () => {
  it(`passes its start-up check against the installed ws (${installed.version})`, () => {
    assert.doesNotThrow(() => checkInstalledWs());
  });

  it("pins ws to the installed minor version in package.json", () => {
    const pkg = require("../../package.json") as { dependencies: Record<string, string> };
    const [major, minor] = installed.version.split(".");
    assert.match(pkg.dependencies.ws ?? "", new RegExp(`^~${major}\\.${minor}\\.\\d+$`));
  });

  it("holds ws's answer to a close frame: the peer's close arrives, we still send, then close for real", async (t) => {
    const { client, server } = await pair(t);
    const peerClose: Array<number | undefined> = [];
    const hook = interceptPeerClose(client, (code) => peerClose.push(code));
    const received: string[] = [];
    server.on("message", (m) => received.push(String(m)));
    server.close(1000);
    await waitFor(() => peerClose.length === 1, "the peer's close frame");
    assert.deepEqual(peerClose, [1000]);
    assert.equal(client.readyState, client.OPEN, "ws stays open after the peer's close frame");
    client.send("after the peer's close");
    await waitFor(() => received.length === 1, "the message");
    const closed = once(client, "close");
    hook.close(1000);
    const [code] = (await closed) as [number];
    assert.equal(code, 1000);
    assert.deepEqual(received, ["after the peer's close"]);
  });

  it("keeps receiving after our own close once the close timer is cleared", async (t) => {
    const { client, server } = await pair(t);
    const received: string[] = [];
    client.on("message", (m) => received.push(String(m)));
    interceptPeerClose(server, () => {}); // the far side keeps sending after our close
    client.close(1000);
    keepReceivingWhileClosing(client);
    assert.equal(client.readyState, client.CLOSING);
    await waitFor(() => rawSocket(server) !== null, "the server leg");
    server.send("still coming");
    await waitFor(() => received.length === 1, "the message");
    assert.deepEqual(received, ["still coming"]);
  });

  it("lets a server leg take over close: the peer's close frame is reported, not answered", async (t) => {
    const { client, server } = await pair(t);
    const frames: number[] = [];
    const leg = takeOverClose(server, (code) => frames.push(code));
    const clientClosed = once(client, "close");
    client.close(4001, "done sending");
    await waitFor(() => frames.length === 1, "the close frame");
    assert.deepEqual(frames, [4001]);
    assert.equal(leg.closeReceived, true);
    assert.equal(leg.closeSent, false, "no close frame goes back until the leg sends one");
    leg.sendClose(1000, "");
    const [code] = (await clientClosed) as [number];
    assert.equal(code, 1000);
  });

  it("gives the raw socket under an open ws and none before", async (t) => {
    const { client } = await pair(t);
    assert.ok(rawSocket(client));
    assert.equal(rawSocket(new WebSocket(null as unknown as string, undefined, {})), null);
  });
});
