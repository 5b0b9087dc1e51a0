/**
 * Messages that arrive on a relayed WebSocket between a handshake step (preamble, reply) and the
 * pump taking over. Held per WebSocket, with the socket paused so the hold stays bounded by what
 * was already read, and handed over by `takeBufferedMessages` (the pump calls it).
 */
import type { RawData, WebSocket } from "ws";

/** A ws message's bytes as one Buffer, whichever binaryType delivered it. */
export function messageBytes(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

interface Held {
  chunks: Buffer[];
  listener: (data: Buffer) => void;
}

const held = new WeakMap<WebSocket, Held>();

/**
 * Starts holding `ws`'s messages, `first` (bytes behind the handshake) and `following` (messages
 * already taken off, in order; an empty one is a reusable stream's end) at their head. With
 * `releaseSoon`, whatever the caller did not take by the next turn of the event loop is re-emitted
 * as ordinary `message` events: a caller that just attaches its own listener after `await` gets
 * every byte too, and the pump, which takes them synchronously, is not affected.
 */
export function holdMessages(
  ws: WebSocket,
  first: Buffer,
  releaseSoon = false,
  following: Buffer[] = [],
): void {
  if (held.has(ws)) return;
  const chunks = first.length ? [first, ...following] : following;
  const entry: Held = { chunks, listener: (d) => entry.chunks.push(d) };
  ws.on("message", entry.listener);
  ws.pause();
  held.set(ws, entry);
  if (releaseSoon) {
    setImmediate(() => {
      if (held.get(ws) !== entry) return;
      for (const chunk of takeBufferedMessages(ws)) ws.emit("message", chunk, true);
    });
  }
}

/**
 * Bytes received on `ws` after its handshake that nobody consumed yet, in order; stops holding
 * and resumes the WebSocket. Call it yourself when not using the pump.
 */
export function takeBufferedMessages(ws: WebSocket): Buffer[] {
  const entry = held.get(ws);
  if (!entry) return [];
  held.delete(ws);
  ws.off("message", entry.listener);
  ws.resume();
  return entry.chunks;
}

/**
 * A filter the pump runs incoming bytes through until it reports `done`: the pipelined sender
 * uses it to take the listener's 3-byte preamble reply off the stream. It returns the bytes to
 * pass on (possibly none) and throws a `RelayFleetError` to refuse the stream.
 */
export type MessageGate = (data: Buffer) => { done: boolean; rest: Buffer };

const gates = new WeakMap<WebSocket, MessageGate>();

export function setMessageGate(ws: WebSocket, gate: MessageGate): void {
  gates.set(ws, gate);
}

/** The gate of `ws`, removed from it (the pump applies it from then on). */
export function takeMessageGate(ws: WebSocket): MessageGate | undefined {
  const gate = gates.get(ws);
  gates.delete(ws);
  return gate;
}
