/**
 * Half-close on ws@8, which has no API for it: the one module of the project that touches ws's
 * private fields (docs/adr/0018-ws-half-close-shim.md).
 *
 * ws answers a received close frame by itself: `receiverOnConclude` sets `_closeFrameReceived`
 * and calls `ws.close(code, reason)`, which sends our close frame and ends the socket — the
 * direction still flowing is cut. And after our own `close()` it arms `_closeTimer`, which
 * destroys the socket 30 s later whether or not the peer has finished sending. TCP half-close
 * (FIN one way, bytes still flowing the other, relay-protocol.md §1.3) needs both undone:
 *
 * - {@link interceptPeerClose} (client legs: the pump): ws's automatic answer is routed to the
 *   caller, which sends the real close later through the returned `close`;
 * - {@link keepReceivingWhileClosing}: clears the close timer so `message` keeps coming in CLOSING;
 * - {@link takeOverClose} (server legs: the relay emulator): the receiver's `conclude` and the
 *   socket's `end` listeners are replaced, and close frames are written with ws's own `Sender`.
 *
 * {@link checkInstalledWs} drives a real ws instance of the installed version through these
 * internals when this module is loaded, so every process that relies on them fails at start — not
 * mid-stream — after a ws release that changed them. ws is pinned to a patch range in
 * package.json for the same reason.
 */
import type { EventEmitter } from "node:events";
import type { Socket } from "node:net";
import { Duplex } from "node:stream";
import { WebSocket } from "ws";

/** The ws@8 private fields this module relies on (ws lib/websocket.js). */
interface WsInternals {
  _receiver: (EventEmitter & { _writableState: { needDrain: boolean } }) | null;
  _sender: {
    close(
      code: number | undefined,
      data: Buffer | string | undefined,
      mask: boolean,
      cb: (err?: Error) => void,
    ): void;
  } | null;
  _socket: Socket | null;
  _closeFrameReceived: boolean;
  _closeFrameSent: boolean;
  _closeCode: number;
  _closeMessage: Buffer;
  _closeTimer: NodeJS.Timeout | null;
  _readyState: number;
}

function internals(ws: WebSocket): WsInternals {
  return ws as unknown as WsInternals;
}

/** The TCP (or TLS) socket under `ws`, for `drain` and corking; null before open and after close. */
export function rawSocket(ws: WebSocket): Socket | null {
  return internals(ws)._socket;
}

/** Handle of {@link interceptPeerClose}. */
export interface PeerCloseHook {
  /** ws's own `close()`: starts (or completes) the close handshake for real. */
  close(code?: number, reason?: string | Buffer): void;
  /** Puts ws's own `close` back on the instance. */
  restore(): void;
}

/**
 * Routes ws's automatic answer to the peer's close frame to `onPeerClose` (once), instead of
 * sending our close frame at once. ws stays OPEN: its receiver is done, `send()` still works.
 * Every other `close()` call goes through unchanged. Once the caller sends the real close with
 * `hook.close`, ws sees the peer's frame is already in and ends the socket: the handshake
 * completes in the normal order.
 */
export function interceptPeerClose(
  ws: WebSocket,
  onPeerClose: (code: number | undefined, reason: string | Buffer | undefined) => void,
): PeerCloseHook {
  const i = internals(ws);
  const realClose = ws.close;
  let answered = false;
  ws.close = function interceptedClose(this: WebSocket, code?: number, reason?: string | Buffer) {
    if (i._closeFrameReceived && !answered && ws.readyState === ws.OPEN) {
      answered = true;
      onPeerClose(code, reason);
      return;
    }
    realClose.call(ws, code, reason as string);
  } as typeof ws.close;
  return {
    close: (code, reason) => realClose.call(ws, code, reason as string),
    restore: () => {
      ws.close = realClose;
    },
  };
}

/** After our `close()`: keep receiving until the peer's own close frame (ws would cut after 30 s). */
export function keepReceivingWhileClosing(ws: WebSocket): void {
  const i = internals(ws);
  if (i._closeTimer) {
    clearTimeout(i._closeTimer);
    i._closeTimer = null;
  }
}

/** Throws when `ws` lacks the internals {@link takeOverClose} relies on. */
export function assertWsInternals(ws: WebSocket): void {
  const i = internals(ws);
  const ok =
    i._receiver !== null &&
    i._receiver !== undefined &&
    typeof i._receiver.listeners === "function" &&
    i._receiver.listeners("conclude").length === 1 &&
    typeof i._sender?.close === "function" &&
    i._socket !== null &&
    i._socket !== undefined &&
    typeof i._closeFrameReceived === "boolean" &&
    typeof i._closeFrameSent === "boolean";
  if (!ok)
    throw new Error("unsupported ws version: the half-close internals changed (lib/hyco/ws-half-close.ts)");
}

/** Close state of one server-side leg, owned by its caller rather than by ws. */
export interface ClosableLeg {
  readonly ws: WebSocket;
  /** The peer sent its close frame. */
  readonly closeReceived: boolean;
  /** We sent (queued) our close frame. */
  readonly closeSent: boolean;
  /** Writes a close frame (once). When the peer's close already arrived, the TCP connection then ends. */
  sendClose(code: number | undefined, reason: Buffer | string): void;
}

/**
 * Takes over close handling of a server-side ws@8 socket (a relay leg): a relay must not answer
 * the sender's close frame itself, the listener does. `onCloseFrame(code, reason)` runs when the
 * peer's close frame arrives (1005 = no status). The socket is ended (the server closes TCP first,
 * RFC 6455 §7.1.1) only once both close frames have crossed.
 */
export function takeOverClose(
  ws: WebSocket,
  onCloseFrame: (code: number, reason: Buffer) => void,
): ClosableLeg {
  assertWsInternals(ws);
  const i = internals(ws);
  const receiver = i._receiver as EventEmitter;
  const sender = i._sender as NonNullable<WsInternals["_sender"]>;
  const socket = i._socket as Socket;
  const dataListeners = socket.listeners("data") as Array<(chunk: Buffer) => void>;
  const endListeners = socket.listeners("end") as Array<() => void>;
  let closeSent = false;

  const leg: ClosableLeg = {
    ws,
    get closeReceived() {
      return i._closeFrameReceived;
    },
    get closeSent() {
      return closeSent;
    },
    sendClose(code, reason) {
      if (closeSent || ws.readyState === WebSocket.CLOSED) return;
      closeSent = true;
      // 1005/1006/1015 must never go on the wire; an absent code is an empty close frame.
      const wireCode =
        code === undefined || code === 1005 || code === 1006 || code === 1015 ? undefined : code;
      const wireReason = wireCode === undefined ? undefined : reason;
      sender.close(wireCode, wireReason, false, (err) => {
        if (err) return; // the socket's 'error' listener handles it
        i._closeFrameSent = true;
        if (i._closeFrameReceived && !socket.writableEnded) socket.end();
      });
      if (i._readyState === WebSocket.OPEN) i._readyState = WebSocket.CLOSING;
    },
  };

  receiver.removeAllListeners("conclude");
  receiver.on("conclude", (code: number, reason: Buffer) => {
    i._closeFrameReceived = true;
    i._closeCode = code;
    i._closeMessage = Buffer.from(reason);
    // The receiver has ended itself; stop feeding it but keep reading so the peer's FIN is seen.
    for (const l of dataListeners) socket.removeListener("data", l);
    process.nextTick(() => socket.resume());
    onCloseFrame(code, i._closeMessage);
    if (closeSent && i._closeFrameSent && !socket.writableEnded) socket.end();
  });

  for (const l of endListeners) socket.removeListener("end", l);
  socket.on("end", () => {
    // A FIN after the peer's close frame is its TCP half-close: keep our write side open until our
    // own close frame is out. A FIN without a close frame is an abnormal end: let ws handle it.
    if (i._closeFrameReceived) {
      if (closeSent && !socket.writableEnded) socket.end();
      return;
    }
    for (const l of endListeners) l.call(socket);
  });
  return leg;
}

/** A client's masked close frame with code 1000 (all-zero mask), as a peer would send it. */
const CLOSE_1000_FRAME = Buffer.from([0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]);

/** A server-side ws of the installed version on an in-memory socket, built as ws's server does. */
function inMemoryWebSocket(fail: (what: string) => never): { ws: WebSocket; socket: Duplex } {
  const ws = new WebSocket(null as unknown as string, undefined, {});
  const socket = new Duplex({
    read() {},
    write(_chunk, _encoding, callback) {
      callback();
    },
  });
  const setSocket = (ws as unknown as { setSocket?: (s: Duplex, head: Buffer, o: object) => void }).setSocket;
  if (typeof setSocket !== "function") fail("WebSocket#setSocket is gone");
  setSocket?.call(ws, socket, Buffer.alloc(0), {});
  return { ws, socket };
}

/**
 * Drives two ws instances of the installed version over in-memory sockets through everything
 * this module relies on: the fields exist, a peer's close frame reaches an intercepted `close` in
 * the same turn with `_closeFrameReceived` set and ws still OPEN, and our own close arms
 * `_closeTimer`, which {@link keepReceivingWhileClosing} clears. Throws a message naming this
 * module when a step fails.
 */
export function checkInstalledWs(): void {
  const fail = (what: string): never => {
    throw new Error(`unsupported ws version: ${what} (lib/hyco/ws-half-close.ts, docs/adr/0018)`);
  };
  const peer = inMemoryWebSocket(fail);
  try {
    assertWsInternals(peer.ws);
    let seen: number | undefined;
    interceptPeerClose(peer.ws, (code) => {
      seen = code;
    });
    peer.socket.emit("data", CLOSE_1000_FRAME);
    if (seen !== 1000 || !internals(peer.ws)._closeFrameReceived)
      fail("a close frame no longer reaches ws.close() in the same turn");
    if (peer.ws.readyState !== peer.ws.OPEN)
      fail("ws no longer stays OPEN while its answer to a close frame is held");
  } finally {
    peer.socket.destroy();
  }
  const own = inMemoryWebSocket(fail);
  try {
    if (internals(own.ws)._closeTimer !== null) fail("_closeTimer is set on an open socket");
    own.ws.close(1000);
    if (internals(own.ws)._closeTimer === null) fail("close() no longer arms _closeTimer");
    keepReceivingWhileClosing(own.ws);
    if (internals(own.ws)._closeTimer !== null) fail("_closeTimer could not be cleared");
  } finally {
    keepReceivingWhileClosing(own.ws);
    own.socket.destroy();
  }
}

// At load, so a process on an incompatible ws stops at start (every pump and relay leg imports this).
checkInstalledWs();
