/**
 * Manual close handling for the two server-side legs of a relayed connection.
 *
 * WHY: a ws@8 `WebSocket` answers a received close frame at once (`receiverOnConclude` calls
 * `close()`), and ends the socket when the peer's TCP FIN arrives (`socketOnEnd`). A relay must not:
 * when the sender sends a close frame (azbridge's `Shutdown()` = `CloseOutputAsync`), that close
 * goes to the listener, and the sender must keep *receiving* until the listener's own close comes
 * back (relay-protocol.md §1.3, .NET `WebSocketTests.cs` L208-219). So for relay legs we replace
 * the receiver's `conclude` listener and the socket's `end` listener with ours, and write close
 * frames with the leg's own `Sender` (which frames and queues them in order after any data).
 *
 * This uses ws internals (`_receiver`, `_sender`, `_socket`, `_closeFrameReceived`, …), checked
 * by {@link assertWsInternals} when the emulator starts, so a ws upgrade that changes them fails
 * loudly instead of silently breaking half-close. ws is pinned to ^8 in package.json.
 */
import type { EventEmitter } from "node:events";
import type { Duplex } from "node:stream";
import WebSocket from "ws";

interface WsSenderInternals {
  close(
    code: number | undefined,
    data: Buffer | string | undefined,
    mask: boolean,
    cb: (err?: Error) => void,
  ): void;
}

interface WsInternals {
  _receiver: EventEmitter & { _writableState: { needDrain: boolean } };
  _sender: WsSenderInternals;
  _socket: Duplex;
  _closeFrameReceived: boolean;
  _closeFrameSent: boolean;
  _closeCode: number;
  _closeMessage: Buffer;
  _readyState: number;
}

function internals(ws: WebSocket): WsInternals {
  return ws as unknown as WsInternals;
}

/** Throws when the installed ws no longer has the internals this file relies on. */
export function assertWsInternals(ws: WebSocket): void {
  const i = internals(ws);
  const ok =
    i._receiver !== undefined &&
    typeof i._receiver.listeners === "function" &&
    i._receiver.listeners("conclude").length === 1 &&
    typeof i._sender?.close === "function" &&
    i._socket !== undefined &&
    typeof i._closeFrameReceived === "boolean";
  if (!ok) throw new Error("relay emulator: unsupported ws version (close-handling internals changed)");
}

/** Codes a close frame may carry (RFC 6455 §7.4; ws throws on the others). */
export function isSendableCloseCode(code: number): boolean {
  return (
    Number.isInteger(code) &&
    ((code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) ||
      (code >= 3000 && code <= 4999))
  );
}

/** Close state of one leg, owned by the relay rather than by ws. */
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
 * Takes over close handling of a server-side ws@8 socket. `onCloseFrame(code, reason)` runs when the
 * peer's close frame arrives (code 1005 = no status). The socket is ended (server closes TCP first,
 * RFC 6455 §7.1.1) only once both close frames have crossed.
 */
export function takeOverClose(
  ws: WebSocket,
  onCloseFrame: (code: number, reason: Buffer) => void,
): ClosableLeg {
  assertWsInternals(ws);
  const i = internals(ws);
  const socket = i._socket;
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
      i._sender.close(wireCode, wireReason, false, (err) => {
        if (err) return; // the socket's 'error' listener handles it
        i._closeFrameSent = true;
        if (i._closeFrameReceived && !socket.writableEnded) socket.end();
      });
      if (i._readyState === WebSocket.OPEN) i._readyState = WebSocket.CLOSING;
    },
  };

  i._receiver.removeAllListeners("conclude");
  i._receiver.on("conclude", (code: number, reason: Buffer) => {
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
