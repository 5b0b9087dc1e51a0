/**
 * Reads the in-band headers at the start of a relayed WebSocket on the listener side (the azbridge
 * preamble, then an optional PROXY v2 header) before the pump takes over. Bytes that arrive behind
 * a header are kept and handed to the pump (`release()`), so nothing is lost or reordered.
 *
 * Bounded in size and time: a peer that sends nothing in time is cut off, and a peer that pushes
 * data while the listener is still busy (resolving the target, connecting to it, up to its connect
 * timeout) is paused once `maxHeldBytes` wait unread — TCP backpressure then holds the rest at the
 * sender, as the pump does later. The hold never exceeds the bound by more than what one socket
 * read delivers.
 */
import type { RawData, WebSocket } from "ws";
import { type ErrorCode, hasErrorCode, RelayFleetError } from "../errors.ts";
import { messageBytes } from "./held-messages.ts";

/** Unread bytes a listener holds per connection before it pauses the relayed WebSocket. */
export const HEADER_HOLD_BYTES = 64 * 1024;

/** Any incremental parser of this code base: `{done:false}` until `{done:true, rest, …}`. */
export interface IncrementalParser<S extends { done: boolean }> {
  push(chunk: Buffer): S;
}

/** What a reader held, for metrics and tests. */
export interface HeaderReaderStats {
  /** Most unread bytes held at any moment. */
  peakHeldBytes: number;
  /** Times the WebSocket was paused because the hold reached its bound. */
  pauses: number;
}

export class HeaderReader {
  private pending: Buffer[] = [];
  private heldBytes = 0;
  private paused = false;
  private waiter: (() => void) | undefined;
  private ended: string | undefined;
  private released = false;
  readonly stats: HeaderReaderStats = { peakHeldBytes: 0, pauses: 0 };
  private readonly onMessage = (data: RawData) => {
    this.hold(messageBytes(data));
    this.waiter?.();
  };
  private readonly onClose = () => {
    this.ended = "the sender closed before its header was complete";
    this.waiter?.();
  };

  /**
   * `initial`: messages already taken off `ws` (held behind a previous stream), read first.
   * `code`: the error code a late header is reported with (default `RF_ERR_PREAMBLE_TIMEOUT`);
   * `closedCode`: the one for a sender that closed first (default: `code`).
   */
  constructor(
    private readonly ws: WebSocket,
    initial: Buffer[] = [],
    private readonly options: { maxHeldBytes?: number; code?: ErrorCode; closedCode?: ErrorCode } = {},
  ) {
    for (const chunk of initial) this.hold(chunk);
    ws.on("message", this.onMessage);
    ws.on("close", this.onClose);
  }

  /** True when `err` is this reader's "nothing (more) came" — not a header that failed to parse. */
  isMissingHeader(err: unknown): boolean {
    const code = this.options.code ?? "RF_ERR_PREAMBLE_TIMEOUT";
    return hasErrorCode(err, code) || hasErrorCode(err, this.options.closedCode ?? code);
  }

  /** True while the reader keeps the WebSocket paused (the hold is at its bound). */
  get isPaused(): boolean {
    return this.paused;
  }

  /** Feeds arriving bytes to `parser` until it is done; leftover bytes stay queued. */
  async read<S extends { done: boolean }>(
    parser: IncrementalParser<S>,
    timeoutMs: number,
    what: string,
  ): Promise<Extract<S, { done: true }>> {
    const code = this.options.code ?? "RF_ERR_PREAMBLE_TIMEOUT";
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.pending.length > 0) {
        const chunk = this.take();
        const step = parser.push(chunk);
        if (step.done) {
          const rest = (step as { rest?: Buffer }).rest;
          if (rest && rest.length > 0) this.unshift(rest);
          return step as Extract<S, { done: true }>;
        }
      }
      if (this.ended) throw new RelayFleetError(this.options.closedCode ?? code, `${what}: ${this.ended}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new RelayFleetError(code, `${what} did not arrive within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = undefined;
    }
  }

  /** Stops reading, resumes the WebSocket, and returns the bytes received behind the headers. */
  release(): Buffer[] {
    if (this.released) return [];
    this.released = true;
    this.ws.off("message", this.onMessage);
    this.ws.off("close", this.onClose);
    // Empty messages stay: on a reusable connection one is the sender's end of stream.
    const rest = this.pending;
    this.pending = [];
    this.heldBytes = 0;
    if (this.paused) {
      this.paused = false;
      this.ws.resume();
    }
    return rest;
  }

  private hold(chunk: Buffer): void {
    this.pending.push(chunk);
    this.heldBytes += chunk.length;
    if (this.heldBytes > this.stats.peakHeldBytes) this.stats.peakHeldBytes = this.heldBytes;
    if (!this.paused && this.heldBytes >= (this.options.maxHeldBytes ?? HEADER_HOLD_BYTES)) {
      this.paused = true;
      this.stats.pauses++;
      this.ws.pause();
    }
  }

  private take(): Buffer {
    const chunk = this.pending.shift() ?? Buffer.alloc(0);
    this.heldBytes -= chunk.length;
    if (this.paused && this.heldBytes < (this.options.maxHeldBytes ?? HEADER_HOLD_BYTES)) {
      this.paused = false;
      this.ws.resume();
    }
    return chunk;
  }

  private unshift(chunk: Buffer): void {
    this.pending.unshift(chunk);
    this.heldBytes += chunk.length;
  }
}
