/**
 * The end of a stream on a reusable connection (one that began as a standby, lib/hyco/standby.ts):
 * each direction ends with an empty binary message instead of the close handshake, and once both
 * ends have crossed the connection carries the next stream. Data frames are never empty, so the
 * empty message is unambiguous.
 */
import type { RawData, WebSocket } from "ws";
import { HeldMessages, messageBytes } from "./held-messages.ts";

/** End of one direction on a reusable connection. */
const END_OF_STREAM = Buffer.alloc(0);

const SEND_OPTIONS = { binary: true, compress: false, fin: true } as const;

/** One stream's two ends on a reusable connection, and what came in behind them. */
export class ReusableEnds {
  /** Our end-of-stream went out. */
  sent = false;
  /** The peer's end-of-stream came in. */
  received = false;
  /** Messages behind both ends: the next stream's first bytes. */
  private readonly next: Buffer[] = [];

  /** Both ends have crossed: the stream is over at a clean boundary. */
  get exchanged(): boolean {
    return this.sent && this.received;
  }

  /** Our side is done: sends the empty message. */
  sendEnd(ws: WebSocket): void {
    this.sent = true;
    ws.send(END_OF_STREAM, SEND_OPTIONS);
  }

  /**
   * A message after the peer's end. The peer may start the next stream only once it has our end
   * too: before that it breaks the protocol (false); after it, the message is kept (true).
   */
  keepAfterEnd(data: RawData): boolean {
    if (!this.sent) return false;
    this.next.push(messageBytes(data));
    return true;
  }

  /** Holds the next stream's messages on `ws` (paused) until their owner takes them. */
  holdNext(ws: WebSocket): HeldMessages {
    return new HeldMessages(ws, this.next);
  }
}
