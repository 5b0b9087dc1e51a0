/**
 * The listener side of the azbridge logical-port layer (relay-protocol.md §4), in one place for
 * every listener of the project — the edge module, the test listeners and the benchmark:
 *
 * - {@link readLogicalPort} reads the sender's preamble with a bounded {@link HeaderReader},
 *   answers a bad version or mode itself, and runs the `$standby` handshake (lib/hyco/standby.ts):
 *   a standby is answered `[1,0,0]` and held, within the gate's limits, until its real preamble;
 * - {@link acceptStream} sends the `[1,0,mode]` reply once the caller has its target;
 * - {@link refuseStream} closes with the close code that says why (azbridge's "no such port" is a
 *   close without a reply; our senders read the code).
 *
 * `readPreamble` / `answerPreamble` are the same steps for a caller without mappings or standbys
 * (test listeners): bytes behind the preamble stay in the returned reader for the pump.
 */
import type { WebSocket } from "ws";
import { errorMessage, hasErrorCode } from "../errors.ts";
import type { Logger } from "../log.ts";
import { PREAMBLE_TIMEOUT_MS } from "./constants.ts";
import { HeaderReader } from "./header-reader.ts";
import {
  encodeReplyError,
  encodeReplyOk,
  MODE_STREAM,
  type Preamble,
  type PreambleMode,
  PreambleParser,
  type RefusalReason,
} from "./preamble.ts";
import { CLOSE_STANDBY_FULL, STANDBY_PORT_NAME } from "./standby.ts";
import type { StandbyGate } from "./standby-gate.ts";

/** Close codes a listener refuses a stream with. */
export const CLOSE_CODES = {
  /** Unknown or refused logical port, bad preamble, allowlist: policy (1008). */
  policy: 1008,
  /** A limit is reached; the sender may try again later (1013). */
  tryLater: 1013,
  /** The target could not be reached, or the listener failed (1011). */
  targetFailed: 1011,
  /** The listener is going away: mapping removed, shutdown (1001). */
  goingAway: 1001,
} as const;

/** Closes `ws` with `code` and a reason (cut to what a close frame carries); never throws. */
export function refuseStream(ws: WebSocket, code: number, reason: string): void {
  try {
    if (ws.readyState === ws.OPEN) ws.close(code, reason.slice(0, 120));
    else if (ws.readyState === ws.CONNECTING) ws.terminate();
  } catch {
    ws.terminate();
  }
}

/** Answers the preamble: the stream is open (`[1,0,mode]`). */
export function acceptStream(ws: WebSocket, mode: PreambleMode = MODE_STREAM): void {
  if (ws.readyState === ws.OPEN) ws.send(encodeReplyOk(mode));
}

export interface ReadLogicalPortOptions {
  preambleTimeoutMs: number;
  /** Standby connections this listener keeps (absent: a `$standby` is refused as unknown). */
  standby?: StandbyGate | undefined;
  /** The connection is a standby whose previous stream ended cleanly: no new `$standby` comes. */
  recycled: boolean;
  logger?: Logger | undefined;
}

/** A stream the sender asked for: its logical port and whether it came over a standby. */
export interface RequestedStream {
  portName: string;
  standby: boolean;
}

/**
 * Reads the preamble and returns the logical port asked for, or `undefined` when the connection
 * was answered and closed here (bad preamble, datagram mode, standby refused or ended unused).
 */
export async function readLogicalPort(
  ws: WebSocket,
  reader: HeaderReader,
  opts: ReadLogicalPortOptions,
): Promise<RequestedStream | undefined> {
  let release: (() => void) | undefined;
  try {
    let step = opts.recycled
      ? undefined
      : await reader.read(new PreambleParser(), opts.preambleTimeoutMs, "preamble");
    const standby = !step || (step.value.portName === STANDBY_PORT_NAME && step.value.mode === MODE_STREAM);
    if (standby) {
      const gate = opts.standby;
      release = gate?.hold(ws);
      if (!gate || !release) {
        // Closing is how azbridge says "no such port"; 1013 tells our senders to retry soon.
        refuseStream(ws, gate ? CLOSE_STANDBY_FULL : CLOSE_CODES.policy, "no standby available");
        return undefined;
      }
      if (step) acceptStream(ws);
      try {
        step = await reader.read(new PreambleParser(), gate.limits.idleMs, "preamble after standby");
      } catch (err) {
        if (!reader.isMissingHeader(err)) throw err;
        opts.logger?.debug({ reason: errorMessage(err) }, "standby connection ended unused");
        refuseStream(ws, 1000, "standby ended");
        return undefined;
      }
    }
    if (!step) return undefined; // unreachable: a standby either read its preamble or returned
    if (step.value.mode !== MODE_STREAM) {
      ws.send(encodeReplyError("datagram-unsupported"));
      refuseStream(ws, CLOSE_CODES.policy, "datagram mode is not supported");
      return undefined;
    }
    if (step.value.portName === STANDBY_PORT_NAME) {
      refuseStream(ws, CLOSE_CODES.policy, "a standby connection cannot be a standby again");
      return undefined;
    }
    return { portName: step.value.portName, standby };
  } catch (err) {
    if (hasErrorCode(err, "RF_ERR_PREAMBLE_VERSION") || hasErrorCode(err, "RF_ERR_PREAMBLE_MODE")) {
      if (ws.readyState === ws.OPEN) ws.send(encodeReplyError("unsupported-version"));
    }
    opts.logger?.warn({ err: errorMessage(err) }, "relayed connection without a valid preamble");
    refuseStream(ws, CLOSE_CODES.policy, "bad preamble");
    return undefined;
  } finally {
    release?.();
  }
}

/** A preamble read by {@link readPreamble}, with the reader that holds the bytes behind it. */
export interface ReadPreamble extends Preamble {
  /** Holds (bounded, pausing the WebSocket) what came behind the preamble: `release()` it to the pump. */
  reader: HeaderReader;
}

/**
 * Reads the sender's preamble from a freshly accepted WebSocket, for a caller that then starts
 * the pump with `initialData: reader.release()`. A bad version or mode is answered `[0,0,0]` and
 * closed here (then rethrown); a timeout closes with 1008.
 */
export async function readPreamble(ws: WebSocket, timeoutMs = PREAMBLE_TIMEOUT_MS): Promise<ReadPreamble> {
  const reader = new HeaderReader(ws, [], { closedCode: "RF_ERR_TUNNEL_REFUSED" });
  try {
    const step = await reader.read(new PreambleParser(), timeoutMs, "preamble");
    return { ...step.value, reader };
  } catch (err) {
    reader.release();
    const code = (err as { code?: string }).code;
    if (ws.readyState === ws.OPEN) {
      if (code === "RF_ERR_PREAMBLE_VERSION" || code === "RF_ERR_PREAMBLE_MODE") {
        ws.send(encodeReplyError("unsupported-version"));
        ws.close(1000, "unsupported preamble version");
      } else if (code === "RF_ERR_PREAMBLE_TIMEOUT") ws.close(CLOSE_CODES.policy, "no preamble");
      else ws.close(CLOSE_CODES.policy, "bad preamble");
    }
    throw err;
  }
}

/**
 * Answers the preamble read by {@link readPreamble}. `true` sends `[1,0,mode]`; an azbridge
 * refusal reason sends its error reply and closes; `false` closes without a reply, which is how
 * azbridge says "no such port".
 */
export function answerPreamble(
  ws: WebSocket,
  answer: boolean | RefusalReason,
  mode: PreambleMode = MODE_STREAM,
): void {
  if (ws.readyState !== ws.OPEN) return;
  if (answer === true) {
    acceptStream(ws, mode);
    return;
  }
  if (answer !== false) ws.send(encodeReplyError(answer));
  ws.close(1000, answer === false ? "no such port" : answer);
}
