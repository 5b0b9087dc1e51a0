/**
 * One client connection, from accept to close: pick the route (the port's, or by SNI / Host on
 * a shared port), enforce the route's limits, open the tunnel to the site through the relay,
 * replay the bytes read so far (after the optional PROXY v2 header) and pump until both sides
 * are done. Every refusal is counted with its reason and closes the client promptly.
 */
import type { Socket } from "node:net";
import { type AuditEnd, type AuditRecord, endOfPump, endpoint } from "../../../lib/audit/index.ts";
import { type ErrorCode, errorMessage, hasErrorCode, RelayFleetError } from "../../../lib/errors.ts";
import type { Pump } from "../../../lib/hyco/pump.ts";
import type { Tunnel } from "../../../lib/hyco/tunnel.ts";
import type { Logger } from "../../../lib/log.ts";
import { encodeProxyV2 } from "../../../lib/proxy-protocol/index.ts";
import type { CircuitBreaker } from "./circuit-breaker.ts";
import { type FirstBytes, type FirstBytesError, readFirstBytes } from "./first-bytes.ts";
import { httpRefusal } from "./http-host.ts";
import type { GatewayMetrics, RefusalReason } from "./metrics.ts";
import type { RouteStates } from "./route-state.ts";
import { lookupName, type Route, type RoutingTable } from "./routing-table.ts";
import { ALERT_DECODE_ERROR, ALERT_UNRECOGNIZED_NAME, tlsAlert } from "./sni.ts";

/**
 * Opens a tunnel (sender connection + logical-port preamble) to a route's site, giving up when
 * `signal` aborts. Bytes the site sends behind its answer stay held on the tunnel until its pump
 * takes them.
 */
export type OpenTunnel = (route: Route, signal: AbortSignal) => Promise<Tunnel>;

export interface ConnectionContext {
  table(): RoutingTable;
  draining(): boolean;
  firstBytesTimeoutMs: number;
  openTunnel: OpenTunnel;
  states: RouteStates;
  breaker: CircuitBreaker;
  metrics: GatewayMetrics;
  log: Logger;
  /** Registers a live tunnel so a drain can wait for it (and abort it at the deadline). */
  track(abort: (reason: string) => void): () => void;
}

/** Relay failures that mean "this site is not reachable now": they feed the circuit breaker. */
const SITE_DOWN_CODES: readonly ErrorCode[] = [
  "RF_ERR_RELAY_NO_LISTENER",
  "RF_ERR_RELAY_UNREACHABLE",
  "RF_ERR_RELAY_TIMEOUT",
  "RF_ERR_RELAY_UNAUTHORIZED",
  "RF_ERR_RELAY_FORBIDDEN",
];

/**
 * The site accepted the relayed connection but did not answer the preamble in time: a slow or
 * stuck target behind one mapping, not a dead site, so it is refused without feeding the breaker.
 */
const SITE_SLOW_CODES: readonly ErrorCode[] = ["RF_ERR_PREAMBLE_TIMEOUT"];

/** Time a refused client gets to read our alert / 421 before the socket is destroyed. */
const REFUSAL_LINGER_MS = 2_000;

function closeWith(socket: Socket, bytes?: Buffer): void {
  if (socket.destroyed) return;
  if (bytes) {
    // end() flushes the alert / response; the timer covers a client that never closes its side.
    socket.end(bytes);
    setTimeout(() => socket.destroy(), REFUSAL_LINGER_MS).unref();
  } else {
    socket.destroy();
  }
}

/** Handles one accepted socket on public `port`. Never throws; every path ends the socket. */
export async function handleConnection(ctx: ConnectionContext, port: number, socket: Socket): Promise<void> {
  const started = process.hrtime.bigint();
  const source = socket.remoteAddress ?? "";
  const log = ctx.log;
  socket.on("error", (err) => log.debug({ port, source, err: errorMessage(err) }, "client socket error"));
  // One audit line per connection, however it ends (lib/audit): who, which route, bytes, how.
  const startedAt = new Date();
  let audited: Route | undefined;
  let audit: (end: AuditEnd, reason?: string, bytesIn?: number, bytesOut?: number) => void = (
    end,
    reason,
    bytesIn = 0,
    bytesOut = 0,
  ) => {
    audit = () => {};
    const record: AuditRecord = {
      side: "gateway",
      time: new Date().toISOString(),
      startedAt: startedAt.toISOString(),
      mapping: audited?.portName ?? "",
      bytesIn,
      bytesOut,
      durationMs: Math.max(0, Date.now() - startedAt.getTime()),
      end,
      publicPort: port,
    };
    const client = endpoint(source, socket.remotePort);
    if (client) record.client = client;
    if (audited) record.site = audited.siteId;
    if (audited?.hostname) record.publicHost = audited.hostname;
    if (reason) record.reason = reason;
    log.info({ event: "audit", audit: record }, "tunnel audit");
  };
  const refuse = (routeKey: string, reason: RefusalReason, reply?: Buffer) => {
    ctx.metrics.refused.inc({ route: routeKey, reason });
    log.info({ event: "refused", route: routeKey, reason, source }, "connection refused");
    audit("refused", reason);
    closeWith(socket, reply);
  };

  const spec = ctx.table().ports.get(port);
  if (!spec) return refuse(String(port), "no_route");
  if (ctx.draining()) return refuse(String(port), "draining");

  let route: Route;
  let initial: Buffer[] = [];
  if (spec.kind === "tcp") {
    route = spec.route;
  } else {
    if (!spec.allowlist.allows(source)) return refuse(String(port), "allowlist");
    let first: FirstBytes;
    try {
      first = await readFirstBytes(socket, ctx.firstBytesTimeoutMs);
    } catch (err) {
      const e = err as FirstBytesError;
      if (e.code === "RF_ERR_GATEWAY_CLIENT_GONE") return closeWith(socket);
      if (e.code === "RF_ERR_GATEWAY_FIRST_BYTES_TIMEOUT") {
        const reply =
          e.protocol === "http"
            ? httpRefusal(408, "Request Timeout", "request head not received in time")
            : undefined;
        return refuse(String(port), "first_bytes_timeout", reply);
      }
      if (e.protocol === "http") {
        const status = e.status ?? 400;
        const reply = httpRefusal(
          status,
          status === 431 ? "Request Header Fields Too Large" : "Bad Request",
          e.message,
        );
        return refuse(String(port), "bad_http_request", reply);
      }
      const reply = e.protocol === "tls" ? tlsAlert(ALERT_DECODE_ERROR) : undefined;
      return refuse(String(port), "bad_client_hello", reply);
    }
    initial = first.bytes;
    if (first.protocol === "tls") {
      if (!first.serverName) return refuse(String(port), "no_sni", tlsAlert(ALERT_UNRECOGNIZED_NAME));
      const found = lookupName(spec.tls, first.serverName);
      if (!found) return refuse(String(port), "unknown_name", tlsAlert(ALERT_UNRECOGNIZED_NAME));
      route = found;
    } else {
      const found = lookupName(spec.http, first.hostname);
      if (!found)
        return refuse(
          String(port),
          "unknown_name",
          httpRefusal(421, "Misdirected Request", `no route for ${first.hostname} on this port`),
        );
      route = found;
    }
  }

  const key = route.key;
  audited = route;
  if (!route.allowlist.allows(source)) return refuse(key, "allowlist");
  if (!ctx.states.allowRate(key, route.ratePerMinute, source)) return refuse(key, "rate_limited");
  if (!ctx.breaker.tryAcquire(route.siteId)) return refuse(key, "circuit_open");
  const over = ctx.states.acquire(
    key,
    {
      max: route.maxConnections,
      perSource: route.limits.maxConnectionsPerSource,
      ratePerMinute: route.ratePerMinute,
    },
    source,
  );
  if (over) {
    ctx.breaker.release(route.siteId);
    return refuse(key, over);
  }
  ctx.metrics.total.inc({ route: key });
  ctx.metrics.active.inc({ route: key });
  // A client that leaves while the relay is still answering must not leave a tunnel behind.
  const setup = new AbortController();
  const clientGone = () =>
    setup.abort(new RelayFleetError("RF_ERR_GATEWAY_CLIENT_GONE", "client left during tunnel setup"));
  socket.once("close", clientGone);
  socket.pause();
  let untrack: (() => void) | undefined;
  let pump: Pump | undefined;
  // A client that has sent no byte by the deadline holds a slot (and a relayed connection) for
  // nothing: close it. Bytes read while the socket is paused for setup count (bytesRead).
  const silentMs = route.limits.silentTimeoutMs;
  const silentTimer =
    silentMs > 0
      ? setTimeout(() => {
          if (socket.bytesRead > 0 || socket.destroyed) return;
          ctx.metrics.timedOut.inc({ route: key, reason: "silent" });
          log.info({ event: "silent-timeout", route: key, source, ms: silentMs }, "silent client closed");
          if (pump) pump.abort("client silent");
          else {
            clientGone();
            socket.destroy();
          }
        }, silentMs)
      : undefined;
  silentTimer?.unref();
  try {
    let tunnel: Tunnel;
    try {
      tunnel = await ctx.openTunnel(route, setup.signal);
    } catch (err) {
      if (setup.signal.aborted) {
        ctx.breaker.release(route.siteId);
        audit("reset", "client closed during tunnel setup");
        return closeWith(socket);
      }
      const down = SITE_DOWN_CODES.some((c) => hasErrorCode(err, c));
      if (down) ctx.breaker.onFailure(route.siteId);
      else ctx.breaker.release(route.siteId);
      ctx.metrics.openCircuits.set(ctx.breaker.openSites());
      const reason: RefusalReason = hasErrorCode(err, "RF_ERR_RELAY_NO_LISTENER")
        ? "no_listener"
        : down || SITE_SLOW_CODES.some((c) => hasErrorCode(err, c))
          ? "relay_error"
          : "port_rejected";
      log.warn(
        { route: key, site: route.siteId, code: (err as { code?: string }).code, err: errorMessage(err) },
        "tunnel failed",
      );
      return refuse(key, reason);
    }
    ctx.breaker.onSuccess(route.siteId);
    ctx.metrics.openCircuits.set(ctx.breaker.openSites());
    socket.off("close", clientGone);
    const ws = tunnel.ws;
    if (socket.destroyed) {
      ws.terminate();
      audit("reset", "client closed during tunnel setup");
      return;
    }
    ctx.metrics.setupSeconds.observe({ route: key }, Number(process.hrtime.bigint() - started) / 1e9);
    if (route.proxyProtocol) {
      ws.send(
        encodeProxyV2({
          sourceAddress: source,
          sourcePort: socket.remotePort ?? 0,
          destinationAddress: socket.localAddress ?? "0.0.0.0",
          destinationPort: socket.localPort ?? port,
        }),
        { binary: true },
      );
    }
    let initialBytes = 0;
    for (const chunk of initial) {
      ws.send(chunk, { binary: true });
      initialBytes += chunk.length;
    }
    const running = tunnel.pump(socket, { idleTimeoutMs: route.limits.idleTimeoutMs });
    pump = running;
    untrack = ctx.track((reason) => running.abort(reason));
    socket.resume();
    const result = await running.done;
    if (result.endedBy === "idle-timeout") ctx.metrics.timedOut.inc({ route: key, reason: "idle" });
    ctx.metrics.bytes.inc({ route: key, direction: "in" }, result.bytesToWebSocket + initialBytes);
    ctx.metrics.bytes.inc({ route: key, direction: "out" }, result.bytesToSocket);
    const { end, reason } = endOfPump(result);
    audit(end, reason, result.bytesToWebSocket + initialBytes, result.bytesToSocket);
    log.debug({ route: key, source, ...result }, "tunnel closed");
  } catch (err) {
    log.error({ route: key, err: errorMessage(err) }, "tunnel crashed");
    audit("reset", "gateway error");
    socket.destroy();
  } finally {
    if (silentTimer) clearTimeout(silentTimer);
    untrack?.();
    socket.off("close", clientGone);
    ctx.states.release(key, source);
    ctx.metrics.active.dec({ route: key });
  }
}
