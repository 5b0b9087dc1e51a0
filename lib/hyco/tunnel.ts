/**
 * The sender side of the azbridge logical-port layer on top of a relayed WebSocket
 * (relay-protocol.md §4): `openLogicalPort(opts, portName)` connects (or takes a standby
 * connection), writes `[1,0,mode,len,name]` and waits for `[1,0,mode]`; an error reply or a close
 * before it is `RF_ERR_TUNNEL_REFUSED`. The listener side is lib/hyco/logical-port-listener.ts.
 *
 * It resolves with a {@link Tunnel}: the object that owns the WebSocket, the bytes the listener
 * sent behind its reply (a server banner), the pipelined reply still to be read, and the standby
 * pool the connection came from. `tunnel.pump(socket)` hands all of that to the pump, so nothing
 * about a connection lives anywhere but on its tunnel (docs/adr/0019-tunnel-object-owns-connection-state.md).
 */
import type { Socket } from "node:net";
import type { WebSocket } from "ws";
import { RelayFleetError } from "../errors.ts";
import { PREAMBLE_TIMEOUT_MS } from "./constants.ts";
import { HeldMessages, type MessageGate, messageBytes } from "./held-messages.ts";
import { encodePreamble, MODE_STREAM, type PreambleMode, ReplyParser } from "./preamble.ts";
import { type Pump, type PumpOptions, startPump } from "./pump.ts";
import { connectSender, type SenderOptions } from "./sender.ts";
import { rawSocket } from "./ws-half-close.ts";

/**
 * Where standby connections come from and go back to (lib/hyco/standby-pool.ts implements it;
 * declared here so that the tunnel does not depend on the pool that opens tunnels).
 */
export interface StandbySource {
  /** An open standby the listener has answered, or undefined (connect as usual). */
  take(): Promise<WebSocket | undefined>;
  /** A stream that found no standby and went through the rendezvous on `ws` (demand). */
  noteOrdinary(ws: WebSocket): void;
  /** The stream on a standby ended its local side: expect it back shortly. */
  expectBack(ws: WebSocket): void;
  /**
   * The stream on a standby is over: `reusable` at a clean boundary, with the messages that came
   * in behind it (any is a protocol violation by the listener).
   */
  giveBack(ws: WebSocket, reusable: boolean, leftovers: Buffer[]): void;
}

/** What the tunnel's pump takes from the caller; the rest comes from the tunnel itself. */
export type TunnelPumpOptions = Omit<PumpOptions, "initialData" | "gate" | "reusable">;

/** One logical port opened on a relayed WebSocket, ready for payload. */
export class Tunnel {
  constructor(
    /** The relayed connection; write to it directly only before `pump` (a PROXY v2 header). */
    readonly ws: WebSocket,
    private held: HeldMessages | undefined,
    private gate: MessageGate | undefined,
    /** The standby pool the connection came from, if it came from one. */
    readonly origin: StandbySource | undefined,
  ) {}

  /**
   * Starts the pump between the tunnel and `socket`, with the bytes held behind the reply first.
   * A tunnel on a standby is pumped as reusable and given back to its pool when the stream ends,
   * so the next stream skips even the refill's rendezvous. Call it once.
   */
  pump(socket: Socket, options: TunnelPumpOptions = {}): Pump {
    const origin = this.origin;
    const pumpOptions: PumpOptions = {
      ...options,
      initialData: this.takeHeld(),
      ...(this.gate ? { gate: this.gate } : {}),
      ...(origin ? { reusable: true } : {}),
    };
    this.gate = undefined;
    const pump = startPump(this.ws, socket, pumpOptions);
    if (origin) {
      const ws = this.ws;
      socket.once("end", () => origin.expectBack(ws));
      void pump.done.then((result) => origin.giveBack(ws, result.reusable === true, pump.takeNextStream()));
    }
    return pump;
  }

  /**
   * The bytes the listener sent behind its reply, in order; from then on the caller reads the
   * WebSocket itself (it is resumed). For a caller that does not use `pump`.
   */
  takeHeld(): Buffer[] {
    const held = this.held;
    this.held = undefined;
    return held?.take() ?? [];
  }
}

export interface LogicalPortOptions {
  mode?: PreambleMode;
  /**
   * Do not wait for the reply: resolve right after writing the preamble, and let the tunnel's
   * pump take the 3-byte reply off the stream (a refusal then resets the TCP side). Saves one
   * relay round trip per connection; an azbridge listener reads exactly the preamble, so bytes
   * behind it are safe.
   */
  pipelined?: boolean;
  /**
   * The whole setup — relay connect and the listener's reply — ends by this deadline (one
   * deadline, each step gets what is left of it): `RF_ERR_RELAY_TIMEOUT` while connecting,
   * `RF_ERR_PREAMBLE_TIMEOUT` while waiting for the reply. Without it, the sender's own connect
   * timeout and `replyTimeoutMs` apply.
   */
  timeoutMs?: number;
  /** Without `timeoutMs`: wait for the listener's reply at most this long (default 10 s). */
  replyTimeoutMs?: number;
  /**
   * Gives up the setup (a client that left): rejects with the signal's reason and closes the
   * connection, whichever step it is in.
   */
  signal?: AbortSignal;
  /**
   * Use a standby connection of this pool when one is ready (lib/hyco/standby-pool.ts), which
   * skips the relay's rendezvous, and keep the pool warm. Without `pipelined`, a standby that
   * turns out to be closed is replaced by a fresh connection, so the caller sees no difference.
   */
  standby?: StandbySource;
}

/**
 * Sender side: connects to the hybrid connection and opens logical port `portName`. Resolves with
 * the tunnel ready for payload; rejects with the sender's relay errors, `RF_ERR_TUNNEL_REFUSED`,
 * `RF_ERR_PREAMBLE_TIMEOUT` or the signal's reason.
 */
export async function openLogicalPort(
  sender: SenderOptions,
  portName: string,
  options: LogicalPortOptions = {},
): Promise<Tunnel> {
  const preamble = encodePreamble(portName, options.mode ?? MODE_STREAM); // validate before connecting
  const deadline = options.timeoutMs === undefined ? undefined : Date.now() + options.timeoutMs;
  const signal = options.signal;
  signal?.throwIfAborted();
  const standby = options.standby;
  const spare = await standby?.take();
  if (spare && standby) {
    if (signal?.aborted) {
      standby.giveBack(spare, true, []); // nothing was written on it: still a clean standby
      throw signal.reason;
    }
    try {
      return await startLogicalPort(spare, preamble, portName, options, deadline, standby);
    } catch (err) {
      // Closed before its reply: the standby died in the pool (or the port is unknown, which the
      // fresh connection below then reports again). Anything else is the listener's answer.
      if ((err as { closeCode?: number }).closeCode === undefined) throw err;
    }
  }
  const ws = await connectSender(
    deadline === undefined ? sender : { ...sender, timeoutMs: timeLeft(deadline, "relay connect") },
    signal,
  );
  standby?.noteOrdinary(ws);
  return startLogicalPort(ws, preamble, portName, options, deadline, undefined);
}

/** What is left until `deadline`, or a timeout error if nothing is. */
function timeLeft(deadline: number, what: string): number {
  const left = deadline - Date.now();
  if (left <= 0) throw new RelayFleetError("RF_ERR_RELAY_TIMEOUT", `${what}: the setup's deadline passed`);
  return left;
}

/** Writes the preamble on a connected `ws` and, unless pipelined, waits for the listener's reply. */
async function startLogicalPort(
  ws: WebSocket,
  preamble: Buffer,
  portName: string,
  options: LogicalPortOptions,
  deadline: number | undefined,
  origin: StandbySource | undefined,
): Promise<Tunnel> {
  const parser = new ReplyParser();
  if (options.pipelined) {
    const gate: MessageGate = (chunk) => {
      const step = parser.push(chunk);
      if (!step.done) return { done: false, rest: chunk.subarray(chunk.length) };
      if (!step.value.ok)
        throw new RelayFleetError(
          "RF_ERR_TUNNEL_REFUSED",
          `logical port '${portName}' refused: ${step.value.reason}`,
        );
      return { done: true, rest: step.rest };
    };
    // Corked until the check phase: the caller starts the pump in this same turn, so the client's
    // first bytes (usually already read) leave in the same TCP segment as the preamble: one
    // write and one relay hop less per connection. Nothing waits longer than this loop turn.
    const raw = rawSocket(ws);
    raw?.cork();
    ws.send(preamble);
    if (raw) setImmediate(() => raw.uncork());
    return new Tunnel(ws, undefined, gate, origin);
  }
  const replyTimeoutMs =
    deadline === undefined
      ? (options.replyTimeoutMs ?? PREAMBLE_TIMEOUT_MS)
      : Math.max(1, deadline - Date.now());
  const reply = readReply(ws, parser, replyTimeoutMs, `logical port '${portName}'`, options.signal);
  ws.send(preamble);
  let result: Awaited<typeof reply>;
  try {
    result = await reply;
  } catch (err) {
    ws.terminate();
    throw err;
  }
  if (!result.ok) {
    result.held.take();
    ws.close(1000);
    throw new RelayFleetError(
      "RF_ERR_TUNNEL_REFUSED",
      `logical port '${portName}' refused: ${result.reason}`,
    );
  }
  return new Tunnel(ws, result.held, undefined, origin);
}

type Reply = ({ ok: true } | { ok: false; reason: string }) & { held: HeldMessages };

/**
 * Runs the reply parser over the WebSocket's messages until it completes, the timeout passes, the
 * signal aborts or the ws closes, and cleans up its listeners in every case. On success the bytes
 * behind the reply are held at once, in the same tick: ws emits several messages of one socket
 * read synchronously, and one emitted before a promise continuation runs would otherwise be lost.
 */
function readReply(
  ws: WebSocket,
  parser: ReplyParser,
  timeoutMs: number,
  what: string,
  signal: AbortSignal | undefined,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      clearTimeout(timer);
      ws.off("message", onMessage);
      ws.off("close", onClose);
      signal?.removeEventListener("abort", onAbort);
    };
    const onMessage = (data: Buffer | ArrayBuffer | Buffer[]) => {
      let step: ReturnType<ReplyParser["push"]>;
      try {
        step = parser.push(messageBytes(data));
      } catch (err) {
        cleanup();
        reject(err);
        return;
      }
      if (step.done) {
        cleanup();
        const held = new HeldMessages(ws, step.rest.length > 0 ? [step.rest] : []);
        resolve({ ...step.value, held });
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
    const onAbort = () => {
      cleanup();
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new RelayFleetError("RF_ERR_PREAMBLE_TIMEOUT", `${what}: nothing after ${timeoutMs} ms`));
    }, timeoutMs);
    ws.on("message", onMessage);
    ws.once("close", onClose);
    if (signal?.aborted) onAbort();
    else signal?.addEventListener("abort", onAbort, { once: true });
  });
}
