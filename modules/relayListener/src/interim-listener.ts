/**
 * INTERIM: a minimal Hybrid Connections listener to the team contract of `lib/hyco/listener.ts`
 * (`HybridConnectionListener`), used until that module lands; `listener-factory.ts` then switches
 * to it and this file goes. Control channel on ws@8 with the token in the
 * `ServiceBusAuthorization` header, accept → rendezvous, reject, renewToken, ping keepalive,
 * exponential backoff with jitter.
 */

import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import WebSocket from "ws";
import { errorMessage } from "../../../lib/errors.ts";
import {
  type BackoffPolicy,
  backoffDelay,
  DEFAULT_BACKOFF,
  PING_INTERVAL_MS,
} from "../../../lib/hyco/constants.ts";
import { encodeRenewToken, parseControlMessage } from "../../../lib/hyco/control-messages.ts";
import { createSasToken } from "../../../lib/hyco/sas.ts";
import { listenUrl, rejectUrl, tokenAudience } from "../../../lib/hyco/urls.ts";
import type { AcceptRequestView, ListenerStateView, RelayListenerPort } from "./relay-listener-port.ts";

export interface InterimListenerOptions {
  endpoint: string;
  hybridConnection: string;
  keyName: string;
  key: string;
  ca?: string;
  backoff?: BackoffPolicy;
  pingIntervalMs?: number;
  tokenTtlSeconds?: number;
}

export class InterimListener extends EventEmitter implements RelayListenerPort {
  state: ListenerStateView = { status: "connecting", since: Date.now() };
  private ws: WebSocket | undefined;
  private closed = false;
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private renewTimer: NodeJS.Timeout | undefined;

  constructor(private opts: InterimListenerOptions) {
    super();
  }

  private token(): string {
    const ttl = this.opts.tokenTtlSeconds ?? 7200;
    return createSasToken(
      tokenAudience(this.opts.endpoint, this.opts.hybridConnection),
      this.opts.keyName,
      this.opts.key,
      {
        ttlSeconds: ttl,
      },
    );
  }

  private setState(next: Omit<ListenerStateView, "since">): void {
    this.state = { ...next, since: Date.now() };
    this.emit("state", this.state);
  }

  start(): void {
    this.connect();
  }

  private connect(): void {
    if (this.closed) return;
    const url = listenUrl(this.opts.endpoint, this.opts.hybridConnection, { id: randomUUID() });
    const ws = new WebSocket(url, {
      headers: { ServiceBusAuthorization: this.token() },
      ca: this.opts.ca,
      handshakeTimeout: 20_000,
    });
    this.ws = ws;
    let failure: string | undefined;
    ws.on("unexpected-response", (_req, res) => {
      failure = `relay answered ${res.statusCode} ${res.statusMessage ?? ""}`.trim();
      ws.terminate();
    });
    ws.on("open", () => {
      this.attempt = 0;
      this.setState({ status: "online" });
      this.pingTimer = setInterval(() => ws.ping(), this.opts.pingIntervalMs ?? PING_INTERVAL_MS);
      this.renewTimer = setInterval(() => this.renew(), ((this.opts.tokenTtlSeconds ?? 7200) * 1000) / 2);
    });
    ws.on("message", (data) => {
      let msg: ReturnType<typeof parseControlMessage>;
      try {
        msg = parseControlMessage(data as Buffer);
      } catch {
        return; // malformed control frames are ignored, never fatal
      }
      if (msg.kind === "accept") this.emit("accept", this.acceptRequest(msg.accept.address, msg.accept.id));
    });
    ws.on("error", (err) => {
      failure ??= errorMessage(err);
    });
    ws.on("close", (code, reason) => {
      clearInterval(this.pingTimer);
      clearInterval(this.renewTimer);
      if (this.ws !== ws) return;
      this.ws = undefined;
      if (this.closed) return;
      const delay = backoffDelay(this.opts.backoff ?? DEFAULT_BACKOFF, this.attempt++);
      this.setState({
        status: "reconnecting",
        lastError:
          failure ?? `control channel closed (${code}${reason.length ? ` ${reason.toString()}` : ""})`,
        nextAttemptAt: Date.now() + delay,
      });
      this.retryTimer = setTimeout(() => this.connect(), delay);
    });
  }

  private acceptRequest(address: string, id: string): AcceptRequestView {
    const ca = this.opts.ca;
    return {
      id,
      accept: () =>
        new Promise<WebSocket>((resolve, reject) => {
          const ws = new WebSocket(address, { ca, handshakeTimeout: 25_000 });
          ws.once("open", () => resolve(ws));
          ws.once("error", reject);
          ws.once("unexpected-response", (_r, res) => {
            ws.terminate();
            reject(new Error(`rendezvous answered ${res.statusCode}`));
          });
        }),
      reject: (status, description) =>
        new Promise<void>((resolve) => {
          const ws = new WebSocket(rejectUrl(address, status, description), { ca, handshakeTimeout: 25_000 });
          const done = () => {
            ws.terminate();
            resolve();
          };
          ws.once("open", done);
          ws.once("error", done);
          ws.once("unexpected-response", done);
        }),
    };
  }

  private renew(): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(encodeRenewToken(this.token()));
  }

  updateCredentials(keyName: string, key: string): void {
    this.opts = { ...this.opts, keyName, key };
    this.renew();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    clearInterval(this.renewTimer);
    const ws = this.ws;
    this.ws = undefined;
    if (ws && ws.readyState !== WebSocket.CLOSED) {
      await new Promise<void>((resolve) => {
        ws.once("close", () => resolve());
        ws.close(1000, "listener closed");
        setTimeout(() => {
          ws.terminate();
          resolve();
        }, 2_000).unref();
      });
    }
    this.setState({ status: "closed" });
  }
}
