/**
 * Messages that arrive on a relayed WebSocket between a handshake step (the preamble reply, a
 * reusable stream's end) and the code that reads next (the pump, the next stream's header
 * reader). Whoever owns the step owns the hold — a tunnel (tunnel.ts), a pump at a reusable
 * boundary — and hands its bytes on with `take()`; the WebSocket stays paused meanwhile, so a
 * hold is bounded by what was already read.
 */
import type { RawData, WebSocket } from "ws";

/** A ws message's bytes as one Buffer, whichever binaryType delivered it. */
export function messageBytes(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

export class HeldMessages {
  private chunks: Buffer[] | undefined;
  private readonly onMessage = (data: RawData) => {
    this.chunks?.push(messageBytes(data));
  };

  /**
   * Starts holding `ws`'s messages behind `first` (messages already taken off, in order; an empty
   * one is a reusable stream's end and is kept) and pauses the WebSocket.
   */
  constructor(
    private readonly ws: WebSocket,
    first: Buffer[] = [],
  ) {
    this.chunks = first;
    ws.on("message", this.onMessage);
    ws.pause();
  }

  /** Every message held, in order; stops holding and resumes the WebSocket. Later calls: []. */
  take(): Buffer[] {
    const chunks = this.chunks;
    if (chunks === undefined) return [];
    this.chunks = undefined;
    this.ws.off("message", this.onMessage);
    this.ws.resume();
    return chunks;
  }
}

/**
 * A filter the pump runs incoming bytes through until it reports `done`: the pipelined sender
 * uses it to take the listener's 3-byte preamble reply off the stream. It returns the bytes to
 * pass on (possibly none) and throws a `RelayFleetError` to refuse the stream.
 */
export type MessageGate = (data: Buffer) => { done: boolean; rest: Buffer };
