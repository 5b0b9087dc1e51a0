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
 * A listener without mappings or standbys (the light test and load-generator site, sim/light-site.ts)
 * calls the same three with the defaults; there is no second, simpler variant.
 */
import type { WebSocket } from "ws";
import { errorMessage, hasErrorCode, RelayFleetError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { PREAMBLE_TIMEOUT_MS } from "./constants.ts";
import type { HeaderReader } from "./header-reader.ts";
import {
  encodeReplyError,
  encodeReplyOk,
  MODE_STREAM,
  type PreambleMode,
  PreambleParser,
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
  /** How long the sender has for its preamble (default {@link PREAMBLE_TIMEOUT_MS}). */
  preambleTimeoutMs?: number | undefined;
  /** Standby connections this listener keeps (absent: a `$standby` is refused as unknown). */
  standby?: StandbyGate | undefined;
  /** The connection is a standby whose previous stream ended cleanly: no new `$standby` comes (default false). */
  recycled?: boolean | undefined;
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
  opts: ReadLogicalPortOptions = {},
): Promise<RequestedStream | undefined> {
  let release: (() => void) | undefined;
  try {
    let step = opts.recycled
      ? undefined
      : await reader.read(new PreambleParser(), opts.preambleTimeoutMs ?? PREAMBLE_TIMEOUT_MS, "preamble");
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
    const code = err instanceof RelayFleetError ? err.code : undefined;
    opts.logger?.warn({ err: errorMessage(err), code }, "relayed connection without a valid preamble");
    refuseStream(ws, CLOSE_CODES.policy, "bad preamble");
    return undefined;
  } finally {
    release?.();
  }
}
