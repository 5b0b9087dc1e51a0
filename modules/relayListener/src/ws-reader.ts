/**
 * Reads the in-band headers at the start of a relayed WebSocket (the azbridge preamble, then an
 * optional PROXY v2 header) before the pump takes over. Bytes that arrive behind a header are
 * kept and handed to the pump as `initialData`, so nothing is lost or reordered. Bounded in size
 * and time: a peer that sends nothing or too much is cut off.
 */
import type { RawData, WebSocket } from "ws";
import { RelayFleetError } from "../../../lib/errors.ts";
import { messageBytes } from "../../../lib/hyco/held-messages.ts";

/** Any incremental parser of this code base: `{done:false}` until `{done:true, rest, …}`. */
export interface IncrementalParser<S extends { done: boolean }> {
  push(chunk: Buffer): S;
}

export class WsHeaderReader {
  private pending: Buffer[] = [];
  private waiter: (() => void) | undefined;
  private ended: string | undefined;
  private readonly onMessage = (data: RawData) => {
    this.pending.push(messageBytes(data));
    this.waiter?.();
  };
  private readonly onClose = () => {
    this.ended = "the sender closed before its header was complete";
    this.waiter?.();
  };

  /** `initial`: messages already taken off `ws` (held behind a previous stream), read first. */
  constructor(
    private readonly ws: WebSocket,
    initial: Buffer[] = [],
  ) {
    this.pending.push(...initial);
    ws.on("message", this.onMessage);
    ws.on("close", this.onClose);
  }

  /** Feeds arriving bytes to `parser` until it is done; leftover bytes stay queued. */
  async read<S extends { done: boolean }>(
    parser: IncrementalParser<S>,
    timeoutMs: number,
    what: string,
  ): Promise<Extract<S, { done: true }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.pending.length > 0) {
        const chunk = this.pending.shift()!;
        const step = parser.push(chunk);
        if (step.done) {
          const rest = (step as { rest?: Buffer }).rest;
          if (rest && rest.length > 0) this.pending.unshift(rest);
          return step as Extract<S, { done: true }>;
        }
      }
      if (this.ended) throw new RelayFleetError("RF_ERR_MODULE_HEADER", `${what}: ${this.ended}`);
      const left = deadline - Date.now();
      if (left <= 0)
        throw new RelayFleetError("RF_ERR_MODULE_HEADER", `${what} did not arrive within ${timeoutMs} ms`);
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

  /** Stops reading and returns the bytes received behind the headers (for the pump). */
  release(): Buffer[] {
    this.ws.off("message", this.onMessage);
    this.ws.off("close", this.onClose);
    // Empty messages stay: on a reusable connection one is the sender's end of stream.
    const rest = this.pending;
    this.pending = [];
    return rest;
  }
}
