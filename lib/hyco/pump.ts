/**
 * The stream pump: bytes between a relayed WebSocket (ws@8) and a TCP socket, for every stream of
 * the project (the module's, the gateway's through `Tunnel.pump`, the test listeners'). TCP
 * semantics are kept:
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
 * ws@8 has no API for half-close: the pump holds ws's automatic answer to the peer's close frame
 * until our TCP side has sent its FIN, and keeps receiving after its own close until the peer's
 * (lib/hyco/ws-half-close.ts, the one shim over ws internals). `idleTimeoutMs` bounds a peer that
 * never finishes (idle-timer.ts). On a reusable connection each direction ends with an empty
 * message instead (reusable-ends.ts); a pipelined sender's reply is taken off by a gate
 * (tunnel.ts). The options and results are in pump-types.ts.
 */
import type { Socket } from "node:net";
import type { WebSocket } from "ws";
import { MAX_FRAME_BYTES, PUMP_HIGH_WATER_BYTES } from "./constants.ts";
import { type HeldMessages, type MessageGate, messageBytes } from "./held-messages.ts";
import { IdleTimer } from "./idle-timer.ts";
import type { Pump, PumpEnd, PumpOptions, PumpResult } from "./pump-types.ts";
import { ReusableEnds } from "./reusable-ends.ts";
import { interceptPeerClose, keepReceivingWhileClosing, rawSocket } from "./ws-half-close.ts";

export type { Pump, PumpEnd, PumpOptions, PumpResult } from "./pump-types.ts";

const SEND_OPTIONS = { binary: true, compress: false, fin: true } as const;

/**
 * Pumps between `ws` and `socket` until both are closed: `done` resolves (never rejects) with byte
 * counts and the ending; `abort()` tears both sides down (drain timeouts, config removal). The one
 * pump entry point; a tunnel from `openLogicalPort` calls it through `Tunnel.pump`.
 */
export function startPump(ws: WebSocket, socket: Socket, options: PumpOptions = {}): Pump {
  const highWater = options.highWaterBytes ?? PUMP_HIGH_WATER_BYTES;
  const maxFrame = Math.min(options.maxFrameBytes ?? MAX_FRAME_BYTES, MAX_FRAME_BYTES);
  const onBytes = options.onBytes;

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
  const ends = new ReusableEnds(); // reusable: each direction's end of stream
  const idleMs = options.idleTimeoutMs ?? 0;
  const idle = new IdleTimer(idleMs, () => {
    fail("idle-timeout", `no traffic for ${idleMs} ms`);
    abort("idle timeout");
  });
  // Pipelined logical port (tunnel.ts): the listener's reply is still to be taken off the stream.
  let gate: MessageGate | undefined = options.gate;
  let nextStreamHeld: HeldMessages | undefined;
  let resolveDone!: (r: PumpResult) => void;
  const done = new Promise<PumpResult>((r) => {
    resolveDone = r;
  });

  const fail = (kind: PumpEnd, message: string) => {
    endedBy ??= kind;
    firstError ??= message;
  };

  const wsSocket = (): Socket | null => rawSocket(ws);

  const closeWebSocket = (code: number, reason?: string) => {
    if (ws.readyState === ws.CONNECTING) {
      ws.terminate();
      return;
    }
    closeHook.close(code, reason);
  };

  const resetSocket = () => {
    if (socket.destroyed) return;
    // RST tells the TCP peer the stream was cut, not finished.
    if (typeof socket.resetAndDestroy === "function" && !socket.connecting) socket.resetAndDestroy();
    else socket.destroy();
  };

  const finish = () => {
    const atBoundary = reusable && ends.exchanged && socketClosed && !wsClosed;
    if (!(wsClosed && socketClosed) && !atBoundary) return;
    idle.stop();
    closeHook.restore();
    ws.off("message", onMessage);
    ws.off("message", onMessageAfterEnd);
    const socketRaw = wsSocket();
    socketRaw?.off("drain", onWsDrain);
    if (atBoundary) {
      ws.off("close", onWsClose);
      ws.off("error", onWsError);
      // Held (and the WebSocket paused) until the owner takes them with the next stream.
      nextStreamHeld = ends.holdNext(ws);
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
    idle.touch();
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
      ends.received = true;
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
    if (!ends.keepAfterEnd(data)) {
      fail("websocket-error", "data after the end of stream");
      abort("data after the end of stream");
    }
  }

  const onSocketDrain = () => {
    if (ws.isPaused) ws.resume();
  };

  // The peer's close frame: ws would answer it at once and cut the direction still flowing.
  const onPeerClose = (code: number | undefined, reason: string | Buffer | undefined) => {
    peerClosed = true;
    closeCode = code ?? 1005;
    if (gate !== undefined) {
      // Closed before the listener accepted the logical port: a refusal, not a FIN.
      gate = undefined;
      fail("websocket-error", `closed (${closeCode}) before the logical port reply`);
      resetSocket();
      closeHook.close(code, reason);
      return;
    }
    if (code === undefined || code === 1000) {
      // Peer finished sending: FIN to our TCP peer once queued bytes are out.
      if (!socket.destroyed) socket.end();
      if (socketEnded) closeHook.close(1000);
      return;
    }
    fail("websocket-error", `peer closed with ${code}${reason ? ` ${String(reason)}` : ""}`);
    resetSocket();
    closeHook.close(code, reason);
  };
  const closeHook = interceptPeerClose(ws, onPeerClose);

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
    idle.touch();
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
      ends.sendEnd(ws);
      return;
    }
    closeHook.close(1000);
    // Keep receiving until the peer's own close frame: ws would destroy the socket after 30 s.
    if (!peerClosed) keepReceivingWhileClosing(ws);
  };

  const onSocketError = (err: Error) => {
    fail("socket-error", err.message);
  };

  const onSocketClose = () => {
    socketClosed = true;
    socketEnded = true;
    if (reusable && ends.exchanged) {
      finish(); // both ends exchanged: a clean boundary, whatever the socket said last
      return;
    }
    if (!wsClosed) {
      if (endedBy === "socket-error" || !socket.readableEnded) {
        // Reset or destroyed without FIN: the far side must not wait for more bytes.
        if (!endedBy) fail("socket-error", "socket closed without FIN");
        closeWebSocket(1011, "connection reset");
      } else if (ws.readyState === ws.OPEN) {
        closeHook.close(1000);
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

  // Bytes that came in behind a preamble or its reply go first, then live traffic.
  for (const chunk of options.initialData ?? []) onMessage(chunk);

  // Either side may already be gone when the pump starts.
  if (wsClosed) onWsClose(1006);
  if (socketClosed) onSocketClose();
  else if (socket.readableEnded) onSocketEnd();

  return { done, abort, takeNextStream: () => nextStreamHeld?.take() ?? [] };
}
