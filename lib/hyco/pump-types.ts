/** What the pump (lib/hyco/pump.ts) takes and what it reports. */
import type { MessageGate } from "./held-messages.ts";

export interface PumpOptions {
  /** Backpressure bound for each direction's sink buffer, bytes (default 1 MiB). */
  highWaterBytes?: number;
  /** Largest binary frame sent, bytes (default and maximum 64 KiB). */
  maxFrameBytes?: number;
  /** Close both sides after this long without a byte either way (0 = never). */
  idleTimeoutMs?: number;
  /** Bytes already taken off the WebSocket (behind the preamble) to write to the socket first. */
  initialData?: readonly Buffer[];
  /**
   * A pipelined logical port (tunnel.ts): incoming bytes pass this filter first, which takes the
   * listener's reply off the stream or refuses it.
   */
  gate?: MessageGate;
  /** Called with each chunk size, for metrics (kept out of the hot path when absent). */
  onBytes?: (direction: "toSocket" | "toWebSocket", bytes: number) => void;
  /**
   * A reusable connection (one that began as a standby, lib/hyco/standby.ts): each direction's
   * end is an empty binary message instead of the close handshake, and once both ends are
   * exchanged and the TCP socket is closed the pump lets go of the WebSocket, still open, with
   * `reusable: true`. Messages behind the peer's end are held for the next stream
   * ({@link Pump.takeNextStream}).
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

/** A running pump: `done` settles once both sides are closed; `abort()` tears both down. */
export interface Pump {
  done: Promise<PumpResult>;
  abort(reason?: string): void;
  /**
   * After a `reusable` result: the messages that came in behind the peer's end of stream, which
   * belong to the next stream (the WebSocket stays paused until they are taken). Otherwise [].
   */
  takeNextStream(): Buffer[];
}
