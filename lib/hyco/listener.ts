/**
 * The listener side of a Hybrid Connection: holds the control channel (`sb-hc-action=listen`),
 * turns `accept` messages into `AcceptRequest`s, renews its token well before expiry, pings with a
 * dead-peer timeout, and reconnects at a fixed rate on its own retry slot (one attempt per
 * `RETRY_PERIOD_MS`, ADR 0013) — one attempt in flight at most, whatever the failure (a 404 too:
 * the hybrid connection may be created later).
 *
 * Several instances on one hybrid connection are fine (the relay spreads senders over them: HA).
 * `close()` stops everything this object started; connections already accepted belong to the
 * caller and are left alone, as are they on `updateCredentials()`.
 */
import { EventEmitter } from "node:events";
import type { IncomingMessage } from "node:http";
import { WebSocket } from "ws";
import { RetrySlots } from "../backoff.ts";
import { errorMessage, RelayFleetError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { AcceptRequest } from "./accept-request.ts";
import {
  HANDSHAKE_TIMEOUT_MS,
  MAX_PAYLOAD_BYTES,
  PING_INTERVAL_MS,
  PONG_TIMEOUT_MS,
  RENDEZVOUS_TIMEOUT_MS,
  RETRY_PERIOD_MS,
  TOKEN_RENEW_FRACTION,
  TOKEN_TTL_SECONDS,
} from "./constants.ts";
import {
  encodeRenewToken,
  encodeResponse,
  MAX_CONTROL_MESSAGE_BYTES,
  parseControlMessage,
} from "./control-messages.ts";
import { createSasToken } from "./sas.ts";
import { errorForFailure, errorForStatus, relaySocketOptions } from "./sender.ts";
import { listenUrl, parseEndpoint, tokenAudience } from "./urls.ts";

export { AcceptRequest } from "./accept-request.ts";

export interface ListenerOptions {
  endpoint: string;
  hybridConnection: string;
  keyName: string;
  key: string;
  /** Extra CA (PEM) for the relay's TLS certificate. */
  ca?: string | Buffer;
  /** Control-channel ping period (default 30 s); the pong timeout is `pongTimeoutMs`. */
  pingIntervalMs?: number;
  pongTimeoutMs?: number;
  /**
   * Reconnect schedule: one attempt per `periodMs` (default `RETRY_PERIOD_MS`) at `phase` (0..1)
   * of each period; default phase random. Channels of one site take phases spread evenly
   * (`phasesApart` in lib/backoff.ts), so one of them is always due within period / n.
   */
  retry?: { periodMs?: number; phase?: number };
  tokenTtlSeconds?: number;
  /** See `SenderOptions.unmaskedFrames` (default off). */
  unmaskedFrames?: boolean;
  handshakeTimeoutMs?: number;
  rendezvousTimeoutMs?: number;
  logger?: Logger;
}

export type ListenerStatus = "connecting" | "online" | "reconnecting" | "closed";

export interface ListenerState {
  status: ListenerStatus;
  lastError?: string;
  /** When the next connect attempt is due (epoch ms), while reconnecting. */
  nextAttemptAt?: number;
  /** When this status began (epoch ms). */
  since: number;
}

export interface HybridConnectionListenerEvents {
  state: [ListenerState];
  accept: [AcceptRequest];
  /** Every control-channel connect attempt (for tests and metrics). */
  attempt: [number];
}

export class HybridConnectionListener extends EventEmitter<HybridConnectionListenerEvents> {
  private readonly options: ListenerOptions;
  private readonly retry: RetrySlots;
  private keyName: string;
  private key: string;
  private control: WebSocket | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private pongTimer: NodeJS.Timeout | undefined;
  private renewTimer: NodeJS.Timeout | undefined;
  /** Why we cut the control channel ourselves (missing pong), for the state's lastError. */
  private deadPeer: string | undefined;
  private onlineSince = 0;
  private closing = false;
  private closedPromise: Promise<void> | undefined;
  /** Accept requests not yet answered, with their expiry timers (the relay drops them at 30 s). */
  private readonly requests = new Map<AcceptRequest, NodeJS.Timeout>();
  private current: ListenerState = { status: "connecting", since: Date.now() };
  /** Number of connect attempts made so far. */
  attempts = 0;

  constructor(options: ListenerOptions) {
    super();
    parseEndpoint(options.endpoint); // fail fast on a bad endpoint
    this.options = options;
    this.retry = new RetrySlots(
      options.retry?.periodMs ?? RETRY_PERIOD_MS,
      options.retry?.phase ?? Math.random(),
    );
    this.keyName = options.keyName;
    this.key = options.key;
  }

  get state(): ListenerState {
    return this.current;
  }

  /** This channel's retry slot: period and phase (0..1) within it. */
  get retrySlot(): { periodMs: number; phase: number } {
    return { periodMs: this.retry.periodMs, phase: this.retry.phase };
  }

  /** Starts connecting; failures are retried with backoff until `close()`. */
  start(): this {
    if (this.control || this.retryTimer || this.closing) return this;
    this.connect();
    return this;
  }

  /** Rotates the key: the relay gets a token signed with it now; no connection is dropped. */
  updateCredentials(keyName: string, key: string): void {
    this.keyName = keyName;
    this.key = key;
    if (this.control?.readyState === WebSocket.OPEN) this.renew();
  }

  /** Stops reconnecting, closes the control channel, cancels rendezvous handshakes in flight. */
  close(): Promise<void> {
    if (this.closedPromise) return this.closedPromise;
    this.closing = true;
    this.clearTimers();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    for (const [r, timer] of this.requests) {
      clearTimeout(timer);
      r.abortPending();
    }
    this.requests.clear();
    const ws = this.control;
    this.closedPromise = new Promise<void>((resolve) => {
      const finish = () => {
        this.setState({ status: "closed", since: Date.now() });
        resolve();
      };
      if (!ws || ws.readyState === WebSocket.CLOSED) return finish();
      ws.once("close", finish);
      if (ws.readyState === WebSocket.OPEN) {
        ws.close(1000, "listener closed");
        // Do not wait on a relay that never answers our close frame.
        setTimeout(() => ws.terminate(), 2_000).unref();
      } else ws.terminate();
    });
    return this.closedPromise;
  }

  private setState(next: ListenerState): void {
    this.current = next;
    this.emit("state", next);
  }

  private token(): string {
    const ttl = this.options.tokenTtlSeconds ?? TOKEN_TTL_SECONDS;
    return createSasToken(
      tokenAudience(this.options.endpoint, this.options.hybridConnection),
      this.keyName,
      this.key,
      { ttlSeconds: ttl },
    );
  }

  private log(level: "debug" | "info" | "warn", obj: Record<string, unknown>, msg: string): void {
    this.options.logger?.[level]({ hybridConnection: this.options.hybridConnection, ...obj }, msg);
  }

  private unmasked(): boolean {
    return this.options.unmaskedFrames ?? false;
  }

  private connect(): void {
    this.retryTimer = undefined;
    if (this.closing) return;
    this.attempts++;
    this.emit("attempt", this.attempts);
    if (this.current.status !== "connecting" && this.current.status !== "reconnecting")
      this.setState({ status: "connecting", since: Date.now() });
    const what = `listen on '${this.options.hybridConnection}'`;
    let ws: WebSocket;
    try {
      const url = listenUrl(this.options.endpoint, this.options.hybridConnection);
      ws = new WebSocket(
        url,
        relaySocketOptions({
          url,
          ca: this.options.ca,
          timeoutMs: this.options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS,
          unmasked: this.unmasked(),
          maxPayload: MAX_CONTROL_MESSAGE_BYTES,
          headers: { ServiceBusAuthorization: this.token() },
        }),
      );
    } catch (err) {
      this.scheduleRetry(errorMessage(err));
      return;
    }
    this.control = ws;
    let failure: string | undefined;
    ws.once("unexpected-response", (_req: unknown, res: IncomingMessage) => {
      res.resume();
      const status = res.statusCode ?? 0;
      const err =
        status === 401 || status === 403 || status === 404
          ? errorForStatus(status, res.statusMessage ?? "", what)
          : new RelayFleetError("RF_ERR_RELAY_HTTP_STATUS", `${what}: relay answered ${status}`, { status });
      failure = `${err.code}: ${err.message}`;
      ws.terminate();
    });
    ws.on("error", (err: Error) => {
      const coded = errorForFailure(err, what);
      failure ??= `${coded.code}: ${coded.message}`;
    });
    ws.once("open", () => this.onOpen(ws));
    ws.on("message", (data: Buffer, isBinary: boolean) => this.onMessage(data, isBinary));
    ws.on("pong", () => this.alive());
    ws.once("close", (code: number, reason: Buffer) => {
      if (this.control === ws) this.control = undefined;
      this.clearTimers();
      if (this.closing) return;
      const wasOnline = this.onlineSince > 0;
      if (wasOnline) this.retry.reset();
      this.onlineSince = 0;
      const dead = this.deadPeer;
      this.deadPeer = undefined;
      const why =
        failure ?? dead ?? `control channel closed (${code}${reason.length ? ` ${reason.toString()}` : ""})`;
      this.log(wasOnline ? "warn" : "debug", { code, error: why }, "control channel lost");
      this.scheduleRetry(why);
    });
  }

  private onOpen(ws: WebSocket): void {
    this.onlineSince = Date.now();
    this.setState({ status: "online", since: this.onlineSince });
    this.log("info", {}, "listener online");
    const pingMs = this.options.pingIntervalMs ?? PING_INTERVAL_MS;
    this.pingTimer = setInterval(() => this.ping(ws), pingMs);
    const ttlMs = (this.options.tokenTtlSeconds ?? TOKEN_TTL_SECONDS) * 1000;
    this.renewTimer = setInterval(() => this.renew(), Math.max(1_000, ttlMs * TOKEN_RENEW_FRACTION));
  }

  private ping(ws: WebSocket): void {
    if (ws.readyState !== WebSocket.OPEN || this.pongTimer) return;
    this.pongTimer = setTimeout(() => {
      this.pongTimer = undefined;
      this.log("warn", {}, "no pong from the relay: reconnecting");
      this.deadPeer = `no pong within ${this.options.pongTimeoutMs ?? PONG_TIMEOUT_MS} ms`;
      ws.terminate();
    }, this.options.pongTimeoutMs ?? PONG_TIMEOUT_MS);
    ws.ping();
  }

  /** Any frame from the relay proves it alive. */
  private alive(): void {
    if (this.pongTimer) clearTimeout(this.pongTimer);
    this.pongTimer = undefined;
  }

  private renew(): void {
    const ws = this.control;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    try {
      ws.send(encodeRenewToken(this.token()));
    } catch (err) {
      this.log("warn", { error: errorMessage(err) }, "token renewal failed");
    }
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    this.alive();
    if (isBinary) {
      // Commands are text frames; binary ones carry HTTP-mode request bodies, which are refused.
      this.log("debug", { bytes: data.length }, "ignored a binary control frame");
      return;
    }
    let message: ReturnType<typeof parseControlMessage>;
    try {
      message = parseControlMessage(data.toString("utf8"));
    } catch (err) {
      // A broken frame must not take the listener down: log it and carry on.
      this.log("warn", { error: errorMessage(err) }, "ignored malformed control message");
      return;
    }
    if (message.kind === "accept") {
      const request = new AcceptRequest(
        message.accept,
        {
          ca: this.options.ca,
          timeoutMs: this.options.rendezvousTimeoutMs ?? RENDEZVOUS_TIMEOUT_MS,
          unmasked: this.unmasked(),
          maxPayload: MAX_PAYLOAD_BYTES,
        },
        () => this.closing,
        () => this.forget(request),
      );
      // Tracked while its handshake may be in flight, so close() can cancel it.
      const expiry = setTimeout(() => this.forget(request), RENDEZVOUS_TIMEOUT_MS + 5_000);
      expiry.unref();
      this.requests.set(request, expiry);
      if (this.listenerCount("accept") === 0) {
        request.reject(503, "no handler").catch(() => {});
        return;
      }
      try {
        this.emit("accept", request);
      } catch (err) {
        // A throwing handler must not take the control channel (and every later accept) down.
        this.log("warn", { error: errorMessage(err) }, "accept handler threw; rejecting");
        request.reject(500, "listener error").catch(() => {});
      }
    } else if (message.kind === "request") {
      this.refuseHttpRequest(message.request.id);
    } else if (message.kind === "unknown") {
      this.log("debug", { keys: message.keys }, "ignored unknown control message");
    }
  }

  /**
   * HTTP-mode requests are not served (a site relays TCP streams): answer each at once with 501,
   * so the sender gets a clear refusal instead of waiting for the relay's 60 s timeout. A body
   * that follows on the control channel arrives as binary frames and is ignored.
   */
  private refuseHttpRequest(requestId: string): void {
    this.log("debug", { id: requestId }, "refused an HTTP-mode request (501)");
    const ws = this.control;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    try {
      ws.send(
        encodeResponse({
          requestId,
          statusCode: 501,
          statusDescription: "Not Implemented: this listener relays WebSocket streams only",
          responseHeaders: { "Content-Type": "text/plain" },
        }),
      );
    } catch (err) {
      this.log("warn", { error: errorMessage(err) }, "answering an HTTP-mode request failed");
    }
  }

  private forget(request: AcceptRequest): void {
    const timer = this.requests.get(request);
    if (timer) clearTimeout(timer);
    this.requests.delete(request);
  }

  private scheduleRetry(error: string): void {
    if (this.closing || this.retryTimer) return;
    // The next free slot: a rate of one attempt per period at most, however the attempt ended.
    const delay = this.retry.next();
    const nextAttemptAt = Date.now() + delay;
    this.setState({ status: "reconnecting", lastError: error, nextAttemptAt, since: Date.now() });
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  private clearTimers(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    if (this.pongTimer) clearTimeout(this.pongTimer);
    if (this.renewTimer) clearInterval(this.renewTimer);
    this.pingTimer = this.pongTimer = this.renewTimer = undefined;
  }
}
