/**
 * A stand-in for the relay in unit tests of lib/hyco's sender side and the module's connection
 * handling: a ws server on a free loopback port whose accepted sockets play the listener's end of a
 * relayed connection. Real sockets, no emulator process.
 */
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { WebSocket, WebSocketServer } from "ws";
import type { CleanupContext } from "./index.ts";

export interface FakeRelay {
  /** `ws://127.0.0.1:port`, an endpoint `connectSender` accepts. */
  endpoint: string;
  wss: WebSocketServer;
  /** The server-side WebSockets (the listener's end), in order of arrival. */
  accepted: WebSocket[];
  /** Upgrade requests seen: URL and the ServiceBusAuthorization header. */
  requests: Array<{ url: string; authorization: string | undefined }>;
}

/** Starts the stand-in; `onConnection` plays the listener on each relayed connection. */
export async function startFakeRelay(
  t: CleanupContext,
  onConnection: (ws: WebSocket) => void = () => {},
): Promise<FakeRelay> {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false });
  await once(wss, "listening");
  const relay: FakeRelay = {
    endpoint: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`,
    wss,
    accepted: [],
    requests: [],
  };
  wss.on("connection", (ws, req) => {
    relay.accepted.push(ws);
    relay.requests.push({
      url: req.url ?? "",
      authorization: req.headers.servicebusauthorization as string | undefined,
    });
    ws.on("error", () => {});
    onConnection(ws);
  });
  t.after(async () => {
    for (const ws of relay.accepted) ws.terminate();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
  });
  return relay;
}

/** A connected client/server WebSocket pair on loopback. */
export async function wsPair(t: CleanupContext): Promise<{ client: WebSocket; server: WebSocket }> {
  const relay = await startFakeRelay(t);
  const client = new WebSocket(relay.endpoint);
  client.on("error", () => {});
  t.after(() => client.terminate());
  await once(client, "open");
  while (relay.accepted.length === 0) await new Promise((r) => setImmediate(r));
  return { client, server: relay.accepted[0] as WebSocket };
}
