/**
 * The dispatcher: one HTTP(S) server whose upgrades on `/$hc/{path}` go to a handler by
 * `sb-hc-action` (listen | connect, also when absent | accept), and whose plain requests go to the
 * admin API. Anything unparseable gets a 4xx and the socket closed; nothing from the network can
 * throw out of here (relay-protocol.md §5.1).
 */
import type { IncomingMessage, RequestListener, Server } from "node:http";
import type { Duplex } from "node:stream";
import type { EmulatorContext, UpgradeRequest } from "./context.ts";
import { handleAccept } from "./handlers/accept.ts";
import { handleConnect } from "./handlers/connect.ts";
import { handleListen } from "./handlers/listen.ts";
import { plainAddress, writeUpgradeError } from "./http-util.ts";

const HC_PREFIX = /^\/(?:\$|%24)hc\//i;

/** Routes one upgrade request. */
export function dispatchUpgrade(
  ctx: EmulatorContext,
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
): void {
  // Peers that vanish mid-handshake must not surface as unhandled 'error' events.
  socket.on("error", (err) => ctx.logger.debug({ err }, "upgrade socket error"));
  try {
    if (ctx.faults.outageActive()) {
      socket.destroy();
      return;
    }
    if ((req.headers.upgrade ?? "").toLowerCase() !== "websocket") {
      ctx.stats.badRequests++;
      writeUpgradeError(socket, 400, "Bad Request: only WebSocket upgrades are supported");
      return;
    }
    let url: URL;
    try {
      url = new URL(req.url ?? "/", "http://emulator");
    } catch {
      ctx.stats.badRequests++;
      writeUpgradeError(socket, 400, "Bad Request: invalid request target");
      return;
    }
    if (!HC_PREFIX.test(url.pathname)) {
      writeUpgradeError(socket, 404, "Endpoint does not exist");
      return;
    }
    let path: string;
    try {
      path = decodeURIComponent(url.pathname.replace(HC_PREFIX, "")).replace(/\/+$/, "");
    } catch {
      ctx.stats.badRequests++;
      writeUpgradeError(socket, 400, "Bad Request: invalid URL encoding");
      return;
    }
    const u: UpgradeRequest = {
      req,
      socket,
      head,
      path,
      query: url.searchParams,
      // Lazy: reading them is a getpeername syscall, and only listen/connect use them (not the
      // rendezvous accept, which is on every connection's setup path).
      get remoteAddress() {
        return plainAddress(req.socket.remoteAddress);
      },
      get remotePort() {
        return req.socket.remotePort ?? 0;
      },
    };
    const action = url.searchParams.get("sb-hc-action") ?? "connect";
    switch (action.toLowerCase()) {
      case "listen":
        handleListen(ctx, u);
        return;
      case "connect":
        handleConnect(ctx, u);
        return;
      case "accept":
        handleAccept(ctx, u);
        return;
      default:
        ctx.stats.badRequests++;
        writeUpgradeError(socket, 400, `Bad Request: unknown sb-hc-action '${action.slice(0, 40)}'`);
    }
  } catch (err) {
    ctx.logger.error({ err }, "relay emulator failed to handle an upgrade");
    writeUpgradeError(socket, 500, "Internal error in the relay emulator");
  }
}

/** Wires the server's events: upgrades, TLS and HTTP parse errors, outage resets. */
export function wireServer(ctx: EmulatorContext, server: Server, onRequest: RequestListener): void {
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) =>
    dispatchUpgrade(ctx, req, socket, head),
  );
  server.on("request", onRequest);
  server.prependListener("connection", (socket: Duplex) => {
    socket.on("error", () => undefined);
    if (ctx.faults.outageActive()) {
      ctx.stats.tcpRefusedDuringOutage++;
      socket.destroy();
    }
  });
  // Garbage instead of HTTP, or a peer that drops mid-request: answer 400 if possible, never throw.
  server.on("clientError", (err: Error & { code?: string }, socket: Duplex) => {
    ctx.stats.badRequests++;
    ctx.logger.debug({ code: err.code }, "HTTP client error");
    if (socket.writable && err.code !== "ECONNRESET") {
      socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    }
    socket.destroy();
  });
  server.on("tlsClientError", (err: Error) => ctx.logger.debug({ err: err.message }, "TLS client error"));
  // Runtime server errors (e.g. a failed re-listen after an outage) are logged, never thrown.
  server.on("error", (err: Error) => ctx.logger.error({ err }, "relay emulator server error"));
}
