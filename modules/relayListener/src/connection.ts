/**
 * One relayed connection on the listener side: read the azbridge preamble, find the mapping by
 * its logical port name, enforce the mapping's limit and the local allowlist, connect to the
 * target (timeout, keepalive), answer the preamble, handle a PROXY v2 header per the mapping,
 * then pump bytes until both sides are done. Every failure closes the WebSocket with a reason
 * and is counted on the mapping; nothing here throws out to the listener.
 */
import { connect, type Socket } from "node:net";
import type { WebSocket } from "ws";
import { errorMessage, hasErrorCode } from "../../../lib/errors.ts";
import { takeBufferedMessages } from "../../../lib/hyco/held-messages.ts";
import { encodeReplyError, encodeReplyOk, MODE_STREAM, PreambleParser } from "../../../lib/hyco/preamble.ts";
import { type PumpResult, startPump } from "../../../lib/hyco/pump.ts";
import { CLOSE_STANDBY_FULL, STANDBY_PORT_NAME, type StandbyGate } from "../../../lib/hyco/standby.ts";
import type { Logger } from "../../../lib/log.ts";
import { ProxyHeaderParser } from "../../../lib/proxy-protocol/index.ts";
import { parseTarget } from "../../../lib/twin/index.ts";
import type { Allowlist } from "./allowlist.ts";
import type { LiveConnection, MappingRuntime } from "./mapping-runtime.ts";
import { WsHeaderReader } from "./ws-reader.ts";

export interface ConnectionContext {
  /** The mapping currently accepting under `name`, if any. */
  findMapping(name: string): MappingRuntime | undefined;
  allowlist: Allowlist;
  logger: Logger;
  preambleTimeoutMs: number;
  keepAliveMs: number;
  /** Standby connections held for senders (absent: refused as an unknown port). */
  standby?: StandbyGate;
  /** Called whenever counters or states change (the reporter coalesces). */
  changed(): void;
  /** Metrics hooks. */
  onOutcome?(mapping: string, outcome: string): void;
  onBytes?(mapping: string, direction: "in" | "out", bytes: number): void;
}

/** Close codes: policy (unknown port, refused), try again later (limit), internal (target failed). */
const CLOSE_POLICY = 1008;
const CLOSE_TRY_LATER = 1013;
const CLOSE_TARGET_FAILED = 1011;

function closeWs(ws: WebSocket, code: number, reason: string): void {
  try {
    if (ws.readyState === ws.OPEN) ws.close(code, reason.slice(0, 120));
    else if (ws.readyState === ws.CONNECTING) ws.terminate();
  } catch {
    ws.terminate();
  }
}

function connectTarget(
  address: string,
  port: number,
  timeoutMs: number,
  keepAliveMs: number,
): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: address,
      port,
      noDelay: true,
      keepAlive: true,
      keepAliveInitialDelay: keepAliveMs,
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connect to ${address}:${port} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.removeAllListeners("error");
      resolve(socket);
    });
    socket.once("error", (err) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    });
  });
}

/**
 * Reads the preamble and returns the logical port asked for, or `undefined` when the connection
 * was answered and closed here. A `$standby` preamble (lib/hyco/standby.ts) is answered and held,
 * within the standby limits, until the real preamble follows; a `recycled` connection (a standby
 * whose previous stream ended cleanly) is held the same way without a new `$standby`.
 */
async function readPortName(
  ws: WebSocket,
  reader: WsHeaderReader,
  ctx: ConnectionContext,
  recycled: boolean,
): Promise<{ portName: string; standby: boolean } | undefined> {
  let release: (() => void) | undefined;
  try {
    let step = recycled
      ? undefined
      : await reader.read(new PreambleParser(), ctx.preambleTimeoutMs, "preamble");
    const standby = !step || (step.value.portName === STANDBY_PORT_NAME && step.value.mode === MODE_STREAM);
    if (standby) {
      const gate = ctx.standby;
      release = gate?.hold(ws);
      if (!gate || !release) {
        // Closing is how azbridge says "no such port"; 1013 tells our senders to retry soon.
        closeWs(ws, gate ? CLOSE_STANDBY_FULL : CLOSE_POLICY, "no standby available");
        return undefined;
      }
      if (step) ws.send(encodeReplyOk(MODE_STREAM));
      try {
        step = await reader.read(new PreambleParser(), gate.limits.idleMs, "preamble after standby");
      } catch (err) {
        if (!hasErrorCode(err, "RF_ERR_MODULE_HEADER")) throw err;
        ctx.logger.debug({ reason: errorMessage(err) }, "standby connection ended unused");
        closeWs(ws, 1000, "standby ended");
        return undefined;
      }
    }
    if (!step) return undefined; // unreachable: a standby either read its preamble or returned
    if (step.value.mode !== MODE_STREAM) {
      ws.send(encodeReplyError("datagram-unsupported"));
      closeWs(ws, CLOSE_POLICY, "datagram mode is not supported");
      return undefined;
    }
    if (step.value.portName === STANDBY_PORT_NAME) {
      closeWs(ws, CLOSE_POLICY, "a standby connection cannot be a standby again");
      return undefined;
    }
    return { portName: step.value.portName, standby };
  } catch (err) {
    if (hasErrorCode(err, "RF_ERR_PREAMBLE_VERSION") || hasErrorCode(err, "RF_ERR_PREAMBLE_MODE")) {
      if (ws.readyState === ws.OPEN) ws.send(encodeReplyError("unsupported-version"));
    }
    ctx.logger.warn({ err: errorMessage(err) }, "relayed connection without a valid preamble");
    closeWs(ws, CLOSE_POLICY, "bad preamble");
    return undefined;
  } finally {
    release?.();
  }
}

/**
 * Serves an accepted rendezvous WebSocket to completion: one stream, or, on a standby, one stream
 * after another for as long as each ends cleanly (lib/hyco/standby.ts). Resolves when the
 * connection is over; never rejects.
 */
export async function serveConnection(ws: WebSocket, ctx: ConnectionContext): Promise<void> {
  let standby = false;
  for (;;) {
    // Messages the pump held behind the previous stream's end belong to this one.
    const reader = new WsHeaderReader(ws, takeBufferedMessages(ws));
    const request = await readPortName(ws, reader, ctx, standby);
    if (!request) {
      reader.release();
      return;
    }
    standby = request.standby;
    const result = await serveStream(ws, reader, ctx, request.portName, standby);
    if (!result?.reusable) return;
  }
}

/** One logical stream on `ws`: mapping, limits, allowlist, target, PROXY header, pump. */
async function serveStream(
  ws: WebSocket,
  reader: WsHeaderReader,
  ctx: ConnectionContext,
  portName: string,
  reusable: boolean,
): Promise<PumpResult | undefined> {
  const mapping = ctx.findMapping(portName);
  if (!mapping?.accepting) {
    if (mapping) mapping.rejectedConnections++;
    ctx.onOutcome?.(mapping ? portName : "", mapping ? "refused" : "unknown-port");
    ctx.logger.info(
      { portName, state: mapping?.state },
      "connection for a logical port that is not accepting",
    );
    closeWs(ws, CLOSE_POLICY, "no such logical port");
    reader.release();
    ctx.changed();
    return;
  }
  if (mapping.atLimit) {
    mapping.rejectedConnections++;
    ctx.onOutcome?.(portName, "limit");
    closeWs(ws, CLOSE_TRY_LATER, "connection limit reached");
    reader.release();
    ctx.changed();
    return;
  }

  // Registered before any await so the limit counts connections still being set up.
  let socket: Socket | undefined;
  let abortPump: ((reason: string) => void) | undefined;
  let aborted: string | undefined;
  let resolveDone!: () => void;
  const live: LiveConnection = {
    done: new Promise<void>((r) => {
      resolveDone = r;
    }),
    abort(reason) {
      aborted ??= reason;
      if (abortPump) abortPump(reason);
      else {
        socket?.destroy();
        closeWs(ws, 1001, reason);
      }
    },
  };
  mapping.live.add(live);
  mapping.totalConnections++;
  ctx.changed();
  const config = mapping.config;
  try {
    const { host, port } = parseTarget(config.target);
    const decision = await ctx.allowlist.check(host, port);
    if (!decision.allowed) {
      mapping.rejectedConnections++;
      mapping.recordError(decision.reason);
      ctx.onOutcome?.(portName, "allowlist");
      closeWs(ws, CLOSE_POLICY, "target refused by the site's allowlist");
      return;
    }
    try {
      socket = await connectTarget(decision.address, port, config.connectTimeoutMs, ctx.keepAliveMs);
    } catch (err) {
      mapping.rejectedConnections++;
      mapping.recordError(`target ${config.target}: ${errorMessage(err)}`);
      if (mapping.state === "active") mapping.state = "error";
      ctx.onOutcome?.(portName, "target-failed");
      closeWs(ws, CLOSE_TARGET_FAILED, "target unreachable");
      return;
    }
    if (aborted) {
      socket.destroy();
      closeWs(ws, 1001, aborted);
      return;
    }
    if (mapping.state === "error") mapping.state = "active";
    socket.on("error", () => {}); // the pump reports socket errors; keep them from crashing
    ws.send(encodeReplyOk(MODE_STREAM));

    if (config.proxyProtocol !== "none") {
      try {
        const step = await reader.read(new ProxyHeaderParser(), ctx.preambleTimeoutMs, "PROXY v2 header");
        if (config.proxyProtocol === "forward" && step.raw) socket.write(step.raw);
      } catch (err) {
        mapping.recordError(`PROXY v2 header expected: ${errorMessage(err)}`);
        ctx.onOutcome?.(portName, "proxy-header");
        socket.destroy();
        closeWs(ws, CLOSE_POLICY, "PROXY v2 header expected");
        return;
      }
    }
    const pump = startPump(ws, socket, {
      initialData: reader.release(),
      idleTimeoutMs: config.idleTimeoutMs,
      reusable,
      onBytes: (direction, bytes) => {
        if (direction === "toSocket") {
          mapping.bytesIn += bytes;
          ctx.onBytes?.(portName, "in", bytes);
        } else {
          mapping.bytesOut += bytes;
          ctx.onBytes?.(portName, "out", bytes);
        }
        ctx.changed();
      },
    });
    abortPump = (reason) => pump.abort(reason);
    if (aborted) pump.abort(aborted);
    ctx.onOutcome?.(portName, "accepted");
    const result = await pump.done;
    if (result.endedBy === "socket-error")
      mapping.recordError(`target connection: ${result.error ?? "error"}`);
    ctx.logger.debug({ portName, ...result }, "relayed connection ended");
    return result;
  } catch (err) {
    mapping.recordError(errorMessage(err));
    ctx.logger.warn({ portName, err: errorMessage(err) }, "relayed connection failed");
    socket?.destroy();
    closeWs(ws, CLOSE_TARGET_FAILED, "internal error");
  } finally {
    reader.release();
    mapping.live.delete(live);
    resolveDone();
    ctx.changed();
  }
}
