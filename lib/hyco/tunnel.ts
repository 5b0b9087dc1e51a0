/**
 * The azbridge logical-port layer on top of a relayed WebSocket (relay-protocol.md §4):
 *
 * - sender: `openLogicalPort(opts, portName)` connects, writes `[1,0,mode,len,name]` and waits for
 *   `[1,0,mode]`; an error reply or a close before it is `RF_ERR_TUNNEL_REFUSED`.
 * - listener: lib/hyco/logical-port-listener.ts.
 *
 * Bytes that arrive behind the preamble or the reply (a pipelining peer, a server banner) are
 * kept per WebSocket and handed to `pumpStreams` through `takeBufferedMessages`, so none is lost
 * between the handshake and the pump.
 */
import type { WebSocket } from "ws";
import { RelayFleetError } from "../errors.ts";
import { PREAMBLE_TIMEOUT_MS } from "./constants.ts";
import { holdMessages, messageBytes, setMessageGate, takeBufferedMessages } from "./held-messages.ts";
import { encodePreamble, MODE_STREAM, type PreambleMode, ReplyParser } from "./preamble.ts";
import { connectSender, type SenderOptions } from "./sender.ts";
import type { StandbyPool } from "./standby.ts";
import { rawSocket } from "./ws-half-close.ts";

export { takeBufferedMessages } from "./held-messages.ts";

/**
 * Runs `parser` over the WebSocket's messages until it completes, the timeout passes or the ws
 * closes. Cleans up its listeners in every case. On success the bytes behind are held at once,
 * in the same tick: ws emits several messages of one socket read synchronously, and a message
 * emitted before a promise continuation runs would otherwise be lost.
 */
function readUntil<T>(
  ws: WebSocket,
  push: (chunk: Buffer) => { done: false } | { done: true; value: T; rest: Buffer },
  timeoutMs: number,
  what: string,
  releaseSoon: boolean,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const backlog = takeBufferedMessages(ws);
    let settled = false;
    const cleanup = () => {
      settled = true;
      clearTimeout(timer);
      ws.off("message", onMessage);
      ws.off("close", onClose);
    };
    const onMessage = (data: Buffer | ArrayBuffer | Buffer[]) => {
      let step: ReturnType<typeof push>;
      try {
        step = push(messageBytes(data));
      } catch (err) {
        cleanup();
        reject(err);
        return;
      }
      if (step.done) {
        cleanup();
        holdMessages(ws, step.rest, releaseSoon, backlog.splice(0));
        resolve(step.value);
      }
    };
    const onClose = (code: number, reason: Buffer) => {
      cleanup();
      reject(
        new RelayFleetError(
          "RF_ERR_TUNNEL_REFUSED",
          `${what}: peer closed (${code}${reason.length ? ` ${reason.toString()}` : ""})`,
          { closeCode: code },
        ),
      );
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new RelayFleetError("RF_ERR_PREAMBLE_TIMEOUT", `${what}: nothing after ${timeoutMs} ms`));
    }, timeoutMs);
    ws.on("message", onMessage);
    ws.once("close", onClose);
    // Messages held from a previous phase (a reused connection's next stream) come first.
    for (let chunk = backlog.shift(); chunk && !settled; chunk = backlog.shift()) onMessage(chunk);
  });
}

export interface LogicalPortOptions {
  mode?: PreambleMode;
  /**
   * Do not wait for the reply: resolve right after writing the preamble, and let `pumpStreams`
   * take the 3-byte reply off the stream (a refusal then resets the TCP side). Saves one relay
   * round trip per connection; an azbridge listener reads exactly the preamble, so bytes behind
   * it are safe. Only for WebSockets handed to `pumpStreams`.
   */
  pipelined?: boolean;
  /** Wait for the listener's reply at most this long (default 10 s). */
  replyTimeoutMs?: number;
  /**
   * Use a standby connection of this pool when one is ready (lib/hyco/standby.ts), which skips
   * the relay's rendezvous, and keep the pool warm. Without `pipelined`, a standby that turns out
   * to be closed is replaced by a fresh connection, so the caller sees no difference.
   */
  standby?: StandbyPool;
}

/**
 * Sender side: connects to the hybrid connection and opens logical port `portName`. Resolves with
 * the WebSocket ready for payload; rejects with the sender's relay errors,
 * `RF_ERR_TUNNEL_REFUSED` or `RF_ERR_PREAMBLE_TIMEOUT`.
 */
export async function openLogicalPort(
  sender: SenderOptions,
  portName: string,
  options: LogicalPortOptions = {},
): Promise<WebSocket> {
  const preamble = encodePreamble(portName, options.mode ?? MODE_STREAM); // validate before connecting
  const spare = await options.standby?.take();
  if (spare) {
    try {
      return await startLogicalPort(spare, preamble, portName, options);
    } catch (err) {
      // Closed before its reply: the standby died in the pool (or the port is unknown, which the
      // fresh connection below then reports again). Anything else is the listener's answer.
      if ((err as { closeCode?: number }).closeCode === undefined) throw err;
    }
  }
  const ws = await connectSender(sender);
  options.standby?.noteOrdinary(ws);
  return startLogicalPort(ws, preamble, portName, options);
}

/** Writes the preamble on a connected `ws` and, unless pipelined, waits for the listener's reply. */
async function startLogicalPort(
  ws: WebSocket,
  preamble: Buffer,
  portName: string,
  options: LogicalPortOptions,
): Promise<WebSocket> {
  const parser = new ReplyParser();
  if (options.pipelined) {
    setMessageGate(ws, (chunk) => {
      const step = parser.push(chunk);
      if (!step.done) return { done: false, rest: chunk.subarray(chunk.length) };
      if (!step.value.ok)
        throw new RelayFleetError(
          "RF_ERR_TUNNEL_REFUSED",
          `logical port '${portName}' refused: ${step.value.reason}`,
        );
      return { done: true, rest: step.rest };
    });
    // Corked until the check phase: the caller starts the pump in this same turn, so the client's
    // first bytes (usually already read) leave in the same TCP segment as the preamble: one
    // write and one relay hop less per connection. Nothing waits longer than this loop turn.
    const raw = rawSocket(ws);
    raw?.cork();
    ws.send(preamble);
    if (raw) setImmediate(() => raw.uncork());
    return ws;
  }
  const reply = readUntil(
    ws,
    (c) => parser.push(c),
    options.replyTimeoutMs ?? PREAMBLE_TIMEOUT_MS,
    `logical port '${portName}'`,
    true,
  );
  ws.send(preamble);
  let result: Awaited<typeof reply>;
  try {
    result = await reply;
  } catch (err) {
    ws.terminate();
    throw err;
  }
  if (!result.ok) {
    takeBufferedMessages(ws);
    ws.close(1000);
    throw new RelayFleetError(
      "RF_ERR_TUNNEL_REFUSED",
      `logical port '${portName}' refused: ${result.reason}`,
    );
  }
  return ws;
}
