/**
 * One relayed connection on the listener side: read the azbridge preamble, find the mapping by
 * its logical port name, enforce the mapping's limit and the local allowlist, connect to the
 * target (timeout, keepalive), answer the preamble, handle a PROXY v2 header per the mapping,
 * then pump bytes until both sides are done. Every failure closes the WebSocket with a reason
 * and is counted on the mapping; nothing here throws out to the listener.
 */
import { connect, type Socket } from "node:net";
import type { WebSocket } from "ws";
import { type AuditEnd, type AuditRecord, endOfPump, endpoint } from "../../../lib/audit/index.ts";
import { errorMessage } from "../../../lib/errors.ts";
import { HeaderReader, type HeaderReaderStats } from "../../../lib/hyco/header-reader.ts";
import {
  acceptStream,
  CLOSE_CODES,
  readLogicalPort,
  refuseStream,
} from "../../../lib/hyco/logical-port-listener.ts";
import { type Pump, type PumpResult, startPump } from "../../../lib/hyco/pump.ts";
import type { StandbyGate } from "../../../lib/hyco/standby-gate.ts";
import type { Logger } from "../../../lib/log.ts";
import { ProxyHeaderParser } from "../../../lib/proxy-protocol/index.ts";
import { parseTarget } from "../../../lib/twin/index.ts";
import type { Allowlist } from "./allowlist.ts";
import type { LiveConnection, MappingRuntime } from "./mapping-runtime.ts";

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
  /** What the header reader held before the pump took over (tests of the hold's bound). */
  onHeaderHold?(stats: HeaderReaderStats): void;
  /** Called once per stream when it ends, however it ends (lib/audit). */
  onTunnelEnd?(record: AuditRecord): void;
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
 * Serves an accepted rendezvous WebSocket to completion: one stream, or, on a standby, one stream
 * after another for as long as each ends cleanly (lib/hyco/standby.ts). Resolves when the
 * connection is over; never rejects.
 */
export async function serveConnection(ws: WebSocket, ctx: ConnectionContext): Promise<void> {
  let standby = false;
  // Messages the pump held behind the previous stream's end belong to the next one.
  let next: Buffer[] = [];
  for (;;) {
    const reader = new HeaderReader(ws, next, { code: "RF_ERR_MODULE_HEADER" });
    const request = await readLogicalPort(ws, reader, {
      preambleTimeoutMs: ctx.preambleTimeoutMs,
      standby: ctx.standby,
      recycled: standby,
      logger: ctx.logger,
    });
    if (!request) {
      reader.release();
      return;
    }
    standby = request.standby;
    const ended = await serveStream(ws, reader, ctx, request.portName, standby);
    if (!ended?.result.reusable) return;
    // Taken in the same turn as the next reader starts: no message falls between the two.
    next = ended.pump.takeNextStream();
  }
}

/** How a stream that reached the pump ended, and its pump (which holds the next stream's bytes). */
interface StreamEnd {
  result: PumpResult;
  pump: Pump;
}

/** One logical stream on `ws`: mapping, limits, allowlist, target, PROXY header, pump. */
async function serveStream(
  ws: WebSocket,
  reader: HeaderReader,
  ctx: ConnectionContext,
  portName: string,
  reusable: boolean,
): Promise<StreamEnd | undefined> {
  // The audit record of this stream (lib/audit): the outcome noted last, the pump's result.
  const startedAt = new Date();
  let outcome = "unknown-port";
  let client: string | undefined;
  let result: PumpResult | undefined;
  const note = (name: string, o: string) => {
    outcome = o;
    ctx.onOutcome?.(name, o);
  };
  const audit = () => {
    if (!ctx.onTunnelEnd) return;
    const ended: { end: AuditEnd; reason?: string } =
      outcome !== "accepted"
        ? { end: "refused", reason: outcome }
        : result
          ? endOfPump(result)
          : { end: "reset", reason: "error" };
    const record: AuditRecord = {
      side: "module",
      time: new Date().toISOString(),
      startedAt: startedAt.toISOString(),
      mapping: portName,
      bytesIn: result?.bytesToSocket ?? 0,
      bytesOut: result?.bytesToWebSocket ?? 0,
      durationMs: Math.max(0, Date.now() - startedAt.getTime()),
      ...ended,
    };
    const target = ctx.findMapping(portName)?.config.target;
    if (target) record.target = target;
    if (client) record.client = client;
    ctx.onTunnelEnd(record);
  };
  const mapping = ctx.findMapping(portName);
  if (!mapping?.accepting) {
    if (mapping) mapping.rejectedConnections++;
    note(mapping ? portName : "", mapping ? "refused" : "unknown-port");
    ctx.logger.info(
      { portName, state: mapping?.state },
      "connection for a logical port that is not accepting",
    );
    refuseStream(ws, CLOSE_CODES.policy, "no such logical port");
    reader.release();
    ctx.changed();
    audit();
    return;
  }
  if (mapping.atLimit) {
    mapping.rejectedConnections++;
    note(portName, "limit");
    refuseStream(ws, CLOSE_CODES.tryLater, "connection limit reached");
    reader.release();
    ctx.changed();
    audit();
    return;
  }

  outcome = "aborted"; // until a later step says otherwise
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
        refuseStream(ws, CLOSE_CODES.goingAway, reason);
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
      note(portName, "allowlist");
      refuseStream(ws, CLOSE_CODES.policy, "target refused by the site's allowlist");
      return;
    }
    try {
      socket = await connectTarget(decision.address, port, config.connectTimeoutMs, ctx.keepAliveMs);
    } catch (err) {
      mapping.rejectedConnections++;
      mapping.recordError(`target ${config.target}: ${errorMessage(err)}`);
      if (mapping.state === "active") mapping.state = "error";
      note(portName, "target-failed");
      refuseStream(ws, CLOSE_CODES.targetFailed, "target unreachable");
      return;
    }
    if (aborted) {
      socket.destroy();
      refuseStream(ws, CLOSE_CODES.goingAway, aborted);
      return;
    }
    if (mapping.state === "error") mapping.state = "active";
    socket.on("error", () => {}); // the pump reports socket errors; keep them from crashing
    acceptStream(ws);

    if (config.proxyProtocol !== "none") {
      try {
        const step = await reader.read(new ProxyHeaderParser(), ctx.preambleTimeoutMs, "PROXY v2 header");
        if ("sourceAddress" in step.header)
          client = endpoint(step.header.sourceAddress, step.header.sourcePort);
        if (config.proxyProtocol === "forward" && step.raw) socket.write(step.raw);
      } catch (err) {
        mapping.recordError(`PROXY v2 header expected: ${errorMessage(err)}`);
        note(portName, "proxy-header");
        socket.destroy();
        refuseStream(ws, CLOSE_CODES.policy, "PROXY v2 header expected");
        return;
      }
    }
    ctx.onHeaderHold?.(reader.stats);
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
    note(portName, "accepted");
    result = await pump.done;
    if (result.endedBy === "socket-error")
      mapping.recordError(`target connection: ${result.error ?? "error"}`);
    ctx.logger.debug({ portName, ...result }, "relayed connection ended");
    return { result, pump };
  } catch (err) {
    mapping.recordError(errorMessage(err));
    ctx.logger.warn({ portName, err: errorMessage(err) }, "relayed connection failed");
    socket?.destroy();
    refuseStream(ws, CLOSE_CODES.targetFailed, "internal error");
  } finally {
    reader.release();
    mapping.live.delete(live);
    resolveDone();
    ctx.changed();
    audit();
  }
}
