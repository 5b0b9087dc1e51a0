/**
 * The stream pump: bytes between a relayed WebSocket (ws@8) and a TCP socket, the only code that
 * holds both. TCP semantics are kept:
 *
 * - Backpressure both ways with a byte bound: the TCP socket is paused once the WebSocket's
 *   outgoing buffer (`ws.bufferedAmount`) passes `highWaterBytes` and resumed on the WebSocket
 *   socket's `drain`; the WebSocket is paused (`ws.pause()`, which pauses its socket) when
 *   `socket.write()` returns false and resumed on the TCP socket's `drain`.
 * - Binary frames of at most 64 KiB (azbridge's pump chunk).
 * - Half-close both ways, as azbridge does it: a TCP FIN becomes a WebSocket close frame (1000)
 *   while bytes keep flowing the other way, and a received close frame (1000/1005) becomes
 *   `socket.end()` while our TCP side may still send.
 * - Resets: an abnormal end on one side (socket error, close code other than 1000/1005, 1006
 *   drop) tears the other side down at once (RST on TCP, 1011 on the WebSocket).
 *
 * ## How half-close works on ws@8 (it has no API for it)
 *
 * ws@8 answers a close frame by itself: `receiverOnConclude` sets `ws._closeFrameReceived` and
 * calls `ws.close(code, reason)`, which sends our close frame and ends the socket. That would cut
 * the direction that is still flowing. The pump installs an own `close` on the instance that,
 * while `_closeFrameReceived` is true and our TCP side has not finished, only records the peer's
 * close and does `socket.end()`: ws stays OPEN (its receiver is done, `send()` still works).
 * When our TCP side then sends its FIN, the real `close(1000)` goes out, and as the peer's close
 * frame is already in, ws ends the socket: the handshake completes in the normal order.
 *
 * The other way round, `ws.close(1000)` on our FIN sets CLOSING and arms `ws._closeTimer`
 * (destroys the socket after 30 s); ws keeps emitting `message` in CLOSING, so the pump clears
 * that timer and keeps delivering until the peer's close frame arrives. `idleTimeoutMs` bounds a
 * peer that never finishes.
 */
import type { Socket } from "node:net";
import type { WebSocket } from "ws";
import { MAX_FRAME_BYTES, PUMP_HIGH_WATER_BYTES } from "./constants.ts";
import {
  holdMessages,
  type MessageGate,
  messageBytes,
  takeBufferedMessages,
  takeMessageGate,
} from "./held-messages.ts";

export interface PumpOptions {
  /** Backpressure bound for each direction's sink buffer, bytes (default 1 MiB). */
  highWaterBytes?: number;
  /** Largest binary frame sent, bytes (default and maximum 64 KiB). */
  maxFrameBytes?: number;
  /** Close both sides after this long without a byte either way (0 = never). */
  idleTimeoutMs?: number;
  /** Bytes already taken off the WebSocket (behind the preamble) to write to the socket first. */
  initialData?: readonly Buffer[];
  /** Called with each chunk size, for metrics (kept out of the hot path when absent). */
  onBytes?: (direction: "toSocket" | "toWebSocket", bytes: number) => void;
  /**
   * A reusable connection (one that began as a standby, lib/hyco/standby.ts): each direction's
   * end is an empty binary message instead of the close handshake, and once both ends are
   * exchanged and the TCP socket is closed the pump lets go of the WebSocket, still open, with
   * `reusable: true`. Messages behind the peer's end are held for the next stream.
   */
  reusable?: boolean;
}

export type PumpEnd =
  /** Both sides finished normally (FIN and close frame, in either order). */
  | "completed"
  /** The TCP socket failed or was reset. */
  | "socket-error"
  /** The WebSocket failed, dropped (1006) or was closed with an error code. */
  | "websocket-error"
  /** `idleTimeoutMs` passed without traffic. */
  | "idle-timeout"
  /** `abort()` was called. */
  | "aborted";

export interface PumpResult {
  /** Bytes written to the TCP socket (WebSocket → TCP). */
  bytesToSocket: number;
  /** Bytes sent on the WebSocket (TCP → WebSocket). */
  bytesToWebSocket: number;
  endedBy: PumpEnd;
  /** Close code the WebSocket ended with (1000, 1005, 1006, …). */
  closeCode?: number;
  /** Message of the first error seen, if any. */
  error?: string;
  /** The stream ended at a clean boundary and the WebSocket is open for the next one. */
  reusable?: true;
}

/** The ws@8 internals the pump relies on (see the module comment); checked in tests. */
interface WsInternals {
  _closeFrameReceived: boolean;
  _closeFrameSent: boolean;
  _closeTimer: NodeJS.Timeout | null;
  _socket: Socket | null;
}

/** A running pump: `done` settles once both sides are closed; `abort()` tears both down. */
export interface Pump {
  done: Promise<PumpResult>;
  abort(reason?: string): void;
}

const SEND_OPTIONS = { binary: true, compress: false, fin: true } as const;

/** End of one direction on a reusable connection: data frames are never empty. */
const END_OF_STREAM = Buffer.alloc(0);

/** Pumps until both sides are closed; resolves (never rejects) with byte counts and the ending. */
export function pumpStreams(ws: WebSocket, socket: Socket, options: PumpOptions = {}): Promise<PumpResult> {
  return startPump(ws, socket, options).done;
}

/** Like {@link pumpStreams}, with an `abort()` handle (drain timeouts, config removal). */
export function startPump(ws: WebSocket, socket: Socket, options: PumpOptions = {}): Pump {
  const highWater = options.highWaterBytes ?? PUMP_HIGH_WATER_BYTES;
  const maxFrame = Math.min(options.maxFrameBytes ?? MAX_FRAME_BYTES, MAX_FRAME_BYTES);
  const onBytes = options.onBytes;
  const internals = ws as unknown as WsInternals;
  const realClose = ws.close;

  let bytesToSocket = 0;
  let bytesToWebSocket = 0;
  let endedBy: PumpEnd | undefined;
  let firstError: string | undefined;
  let closeCode: number | undefined;
  let socketEnded = false; // our TCP peer sent FIN (or the socket is gone)
  let peerClosed = false; // the WebSocket peer's close frame arrived
  let wsClosed = ws.readyState === ws.CLOSED;
  let socketClosed = socket.destroyed;
  let waitingWsDrain = false;
  const reusable = options.reusable === true;
  let endSent = false; // reusable: our end-of-stream went out
  let endReceived = false; // reusable: the peer's end-of-stream came in
  const nextStream: Buffer[] = []; // reusable: messages behind both ends, for the next stream
  // Time of the last byte either way; the idle timer re-arms for what is left of the period, so
  // it fires `idleTimeoutMs` after the last byte (a fixed-period check would take up to twice that).
  let lastActivity = Date.now();
  let idleTimer: NodeJS.Timeout | undefined;
  // Pipelined logical port (tunnel.ts): the listener's reply is still to be taken off the stream.
  let gate: MessageGate | undefined = takeMessageGate(ws);
  let resolveDone!: (r: PumpResult) => void;
  const done = new Promise<PumpResult>((r) => {
    resolveDone = r;
  });

  const fail = (kind: PumpEnd, message: string) => {
    endedBy ??= kind;
    firstError ??= message;
  };

  const wsSocket = (): Socket | null => internals._socket;

  const closeWebSocket = (code: number, reason?: string) => {
    if (ws.readyState === ws.CONNECTING) {
      ws.terminate();
      return;
    }
    realClose.call(ws, code, reason);
  };

  const resetSocket = () => {
    if (socket.destroyed) return;
    // RST tells the TCP peer the stream was cut, not finished.
    if (typeof socket.resetAndDestroy === "function" && !socket.connecting) socket.resetAndDestroy();
    else socket.destroy();
  };

  const finish = () => {
    const atBoundary = reusable && endSent && endReceived && socketClosed && !wsClosed;
    if (!(wsClosed && socketClosed) && !atBoundary) return;
    if (idleTimer) clearTimeout(idleTimer);
    ws.close = realClose;
    ws.off("message", onMessage);
    ws.off("message", onMessageAfterEnd);
    const socketRaw = wsSocket();
    socketRaw?.off("drain", onWsDrain);
    if (atBoundary) {
      ws.off("close", onWsClose);
      ws.off("error", onWsError);
      // Held (and the WebSocket paused) until the owner takes them with the next stream.
      holdMessages(ws, END_OF_STREAM, false, nextStream);
    }
    resolveDone({
      bytesToSocket,
      bytesToWebSocket,
      endedBy: endedBy ?? "completed",
      ...(closeCode !== undefined ? { closeCode } : {}),
      ...(firstError !== undefined ? { error: firstError } : {}),
      ...(atBoundary ? { reusable: true as const } : {}),
    });
  };

  // ---- WebSocket → TCP -------------------------------------------------------------------------

  function onMessage(data: Buffer | ArrayBuffer | Buffer[]): void {
    let buf = messageBytes(data);
    lastActivity = Date.now();
    if (gate !== undefined) {
      try {
        const step = gate(buf);
        if (step.done) gate = undefined;
        buf = step.rest;
      } catch (err) {
        gate = undefined;
        fail("websocket-error", err instanceof Error ? err.message : String(err));
        abort("logical port refused");
        return;
      }
      if (buf.length === 0) return;
    }
    if (reusable && buf.length === 0) {
      // The peer's end of stream: FIN to our TCP peer; what follows belongs to the next stream.
      endReceived = true;
      ws.off("message", onMessage);
      ws.on("message", onMessageAfterEnd);
      if (!socket.destroyed) socket.end();
      finish();
      return;
    }
    if (socket.destroyed || socket.writableEnded) {
      // Bytes we can no longer deliver: the stream is broken, say so on both sides.
      if (!endedBy) abort("data after the socket's write side ended");
      return;
    }
    bytesToSocket += buf.length;
    onBytes?.("toSocket", buf.length);
    socket.write(buf);
    // Pause only once `drain` is certain to come (writableNeedDrain), so a bound below the
    // socket's own high-water mark cannot stall the pump.
    if (socket.writableLength >= highWater && socket.writableNeedDrain) ws.pause();
  }

  /**
   * Reusable, after the peer's end: the peer may start the next stream only once it has our end
   * too, so bytes before that break the protocol; bytes after it are kept for the next stream.
   */
  function onMessageAfterEnd(data: Buffer | ArrayBuffer | Buffer[]): void {
    if (!endSent) {
      fail("websocket-error", "data after the end of stream");
      abort("data after the end of stream");
      return;
    }
    nextStream.push(messageBytes(data));
  }

  const onSocketDrain = () => {
    if (ws.isPaused) ws.resume();
  };

  // Our replacement of ws.close, see the module comment.
  ws.close = function pumpClose(this: WebSocket, code?: number, reason?: string | Buffer) {
    if (internals._closeFrameReceived && !peerClosed && ws.readyState === ws.OPEN) {
      peerClosed = true;
      closeCode = code ?? 1005;
      if (gate !== undefined) {
        // Closed before the listener accepted the logical port: a refusal, not a FIN.
        gate = undefined;
        fail("websocket-error", `closed (${closeCode}) before the logical port reply`);
        resetSocket();
        realClose.call(ws, code, reason);
        return;
      }
      if (code === undefined || code === 1000) {
        // Peer finished sending: FIN to our TCP peer once queued bytes are out.
        if (!socket.destroyed) socket.end();
        if (socketEnded) realClose.call(ws, 1000);
        return;
      }
      fail("websocket-error", `peer closed with ${code}${reason ? ` ${String(reason)}` : ""}`);
      resetSocket();
      realClose.call(ws, code, reason);
      return;
    }
    realClose.call(ws, code, reason as string);
  } as typeof ws.close;

  const onWsClose = (code: number) => {
    wsClosed = true;
    closeCode ??= code;
    if (gate !== undefined && !socket.destroyed) {
      // Closed before the listener accepted the logical port: that is a refusal, not an EOF.
      fail("websocket-error", `closed (${code}) before the logical port reply`);
      resetSocket();
    }
    if (!socket.destroyed) {
      if (peerClosed || code === 1000 || code === 1005) {
        // Orderly end: whatever is queued still reaches the TCP peer, then FIN.
        if (!socket.writableEnded) socket.end();
        if (!socketEnded) {
          // The WebSocket is gone, so nothing more can be sent: stop reading TCP.
          if (!peerClosed) fail("websocket-error", `websocket closed (${code}) before the peer's FIN`);
          socket.destroySoon();
        }
      } else {
        fail("websocket-error", `websocket closed abnormally (${code})`);
        resetSocket();
      }
    }
    finish();
  };

  const onWsError = (err: Error) => {
    fail("websocket-error", err.message);
  };

  // ---- TCP → WebSocket -------------------------------------------------------------------------

  function onWsDrain(): void {
    if (!waitingWsDrain) return;
    waitingWsDrain = false;
    if (!socketEnded && !socket.destroyed) socket.resume();
  }

  const onSocketData = (chunk: Buffer) => {
    lastActivity = Date.now();
    if (ws.readyState !== ws.OPEN) return;
    const length = chunk.length;
    bytesToWebSocket += length;
    onBytes?.("toWebSocket", length);
    if (length <= maxFrame) {
      ws.send(chunk, SEND_OPTIONS);
    } else {
      for (let offset = 0; offset < length; offset += maxFrame) {
        ws.send(chunk.subarray(offset, Math.min(length, offset + maxFrame)), SEND_OPTIONS);
      }
    }
    const raw = wsSocket();
    if (raw && raw.writableLength >= highWater && raw.writableNeedDrain) {
      socket.pause();
      waitingWsDrain = true;
    }
  };

  const onSocketEnd = () => {
    socketEnded = true;
    if (ws.readyState !== ws.OPEN) return;
    if (reusable && !peerClosed) {
      endSent = true;
      ws.send(END_OF_STREAM, SEND_OPTIONS);
      return;
    }
    if (peerClosed) {
      realClose.call(ws, 1000);
      return;
    }
    realClose.call(ws, 1000);
    // Keep receiving until the peer's own close frame: ws would destroy the socket after 30 s.
    if (internals._closeTimer) {
      clearTimeout(internals._closeTimer);
      internals._closeTimer = null;
    }
  };

  const onSocketError = (err: Error) => {
    fail("socket-error", err.message);
  };

  const onSocketClose = () => {
    socketClosed = true;
    socketEnded = true;
    if (reusable && endSent && endReceived) {
      finish(); // both ends exchanged: a clean boundary, whatever the socket said last
      return;
    }
    if (!wsClosed) {
      if (endedBy === "socket-error" || !socket.readableEnded) {
        // Reset or destroyed without FIN: the far side must not wait for more bytes.
        if (!endedBy) fail("socket-error", "socket closed without FIN");
        closeWebSocket(1011, "connection reset");
      } else if (ws.readyState === ws.OPEN) {
        realClose.call(ws, 1000);
      }
    }
    finish();
  };

  const abort = (reason = "aborted") => {
    fail("aborted", reason);
    resetSocket();
    if (!wsClosed) {
      closeWebSocket(1001, reason.slice(0, 120));
      // Do not wait for a peer that may be stuck: give it a moment, then cut.
      const t = setTimeout(() => ws.terminate(), 1_000);
      t.unref();
    }
  };

  // ---- wiring ---------------------------------------------------------------------------------

  socket.setNoDelay(true);
  // A net.Socket made without allowHalfOpen ends its write side when the peer's FIN arrives, which
  // would drop the bytes still coming from the WebSocket. Half-close needs it on.
  socket.allowHalfOpen = true;
  ws.on("message", onMessage);
  ws.once("close", onWsClose);
  ws.on("error", onWsError);
  wsSocket()?.on("drain", onWsDrain);
  socket.on("data", onSocketData);
  socket.on("drain", onSocketDrain);
  socket.once("end", onSocketEnd);
  socket.on("error", onSocketError);
  socket.once("close", onSocketClose);

  for (const chunk of options.initialData ?? []) onMessage(chunk);
  // Bytes that came in behind a preamble or its reply (tunnel.ts) go first, then live traffic.
  for (const chunk of takeBufferedMessages(ws)) onMessage(chunk);

  const idleMs = options.idleTimeoutMs ?? 0;
  if (idleMs > 0) {
    const checkIdle = () => {
      const quietFor = Date.now() - lastActivity;
      if (quietFor < idleMs) {
        idleTimer = setTimeout(checkIdle, idleMs - quietFor);
        idleTimer.unref();
        return;
      }
      fail("idle-timeout", `no traffic for ${idleMs} ms`);
      abort("idle timeout");
    };
    idleTimer = setTimeout(checkIdle, idleMs);
    idleTimer.unref();
  }

  // Either side may already be gone when the pump starts.
  if (wsClosed) onWsClose(1006);
  if (socketClosed) onSocketClose();
  else if (socket.readableEnded) onSocketEnd();

  return { done, abort };
}
