/**
 * A registered listener's control channel (relay-protocol.md §1.2, §1.5, §1.6): the service sends
 * `accept` as JSON text frames; the listener may send `renewToken`; pings are answered by ws.
 * The channel closes with 1008 when its token expires or a renewal is invalid, 1001 when the
 * hybrid connection is deleted, and (optionally) when silent for too long.
 */
import { randomUUID } from "node:crypto";
import WebSocket from "ws";
import { encodeAccept } from "../../lib/hyco/control-messages.ts";
import type { Logger } from "../../lib/log.ts";
import { isSendableCloseCode } from "./close-control.ts";
import { handleRenewToken } from "./handlers/renew-token.ts";
import type { HybridConnection, Namespace, RegisteredListener } from "./namespace.ts";
import type { RelayEmulatorOptions } from "./options.ts";
import type { Stats } from "./stats.ts";

/** setTimeout's ceiling; later expiries are re-armed in steps. */
const MAX_TIMER_MS = 2_147_000_000;

export interface AcceptMessage {
  accept: {
    address: string;
    id: string;
    connectHeaders: Record<string, string>;
    remoteEndpoint: { address: string; port: number };
  };
}

/** The parts of the emulator's context a control channel uses (context.ts has them all). */
export interface ControlChannelContext {
  options: RelayEmulatorOptions;
  namespace: Namespace;
  stats: Stats;
  logger: Logger;
  /** Every open control channel: the channel adds itself and leaves when it closes. */
  controlChannels: Set<ControlChannel>;
}

export class ControlChannel implements RegisteredListener {
  readonly id = randomUUID();
  /** Host header the listener used: rendezvous addresses point there (§5.4). */
  readonly host: string;
  readonly remoteAddress: string;
  readonly connectedAt = Date.now();
  private expiresAtMs: number;
  private expiryTimer: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly ctx: ControlChannelContext,
    readonly ws: WebSocket,
    readonly hc: HybridConnection,
    init: { host: string; remoteAddress: string; expiresAtSeconds: number },
  ) {
    this.host = init.host;
    this.remoteAddress = init.remoteAddress;
    this.expiresAtMs = init.expiresAtSeconds * 1000;
    hc.listeners.add(this);
    ctx.controlChannels.add(this);
    this.armExpiry();
    this.touch();
    ws.on("error", (err) => ctx.logger.debug({ err, hc: hc.name }, "control channel error"));
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      this.touch();
      this.onMessage(data, isBinary);
    });
    ws.on("ping", () => this.touch());
    ws.on("pong", () => this.touch());
    ws.on("close", (code: number) => this.onClosed(code));
  }

  /** Token expiry in epoch seconds (tests read it after a renewal). */
  get expiresAtSeconds(): number {
    return Math.floor(this.expiresAtMs / 1000);
  }

  /** A valid renewToken moved the expiry. */
  renew(expiresAtSeconds: number): void {
    this.expiresAtMs = expiresAtSeconds * 1000;
    this.armExpiry();
  }

  private armExpiry(): void {
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    const delay = this.expiresAtMs - Date.now();
    if (delay <= 0) {
      this.close(1008, "The token has expired");
      return;
    }
    this.expiryTimer = setTimeout(() => this.armExpiry(), Math.min(delay, MAX_TIMER_MS));
    this.expiryTimer.unref();
  }

  private touch(): void {
    const ms = this.ctx.options.controlIdleTimeoutMs;
    if (ms <= 0 || this.closed) return;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => this.close(1001, "The control channel was idle"), ms);
    this.idleTimer.unref();
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (isBinary) {
      this.ctx.logger.debug({ hc: this.hc.name }, "binary frame on control channel ignored");
      return;
    }
    let message: unknown;
    try {
      message = JSON.parse(data.toString("utf8"));
    } catch {
      this.ctx.logger.debug({ hc: this.hc.name }, "non-JSON control frame ignored");
      return;
    }
    if (typeof message !== "object" || message === null || Array.isArray(message)) return;
    if ("renewToken" in message) {
      handleRenewToken(this.ctx, this, (message as { renewToken: unknown }).renewToken);
      return;
    }
    // Unknown commands are ignored, as .NET's listener and the service do.
    this.ctx.logger.debug(
      { hc: this.hc.name, keys: Object.keys(message).slice(0, 5) },
      "unknown control command ignored",
    );
  }

  /** Sends an accept command; false when the channel is no longer open. */
  sendAccept(message: AcceptMessage): boolean {
    if (this.closed || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(encodeAccept(message.accept));
    return true;
  }

  /** Closes the control channel with a close frame (1001 deleted, 1008 token, 1011 error). */
  close(code: number, reason: string): void {
    if (this.closed) return;
    if (!isSendableCloseCode(code)) {
      this.terminate(); // 1005/1006/1015 never travel in a frame: drop the connection instead
      return;
    }
    this.detach();
    this.ctx.stats.controlClosed(code);
    this.ws.close(code, reason);
  }

  /** Drops the TCP connection without a close frame (outage). */
  terminate(): void {
    this.detach();
    this.ctx.stats.controlClosed(1006);
    this.ws.terminate();
  }

  private detach(): void {
    this.closed = true;
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.hc.listeners.delete(this);
    this.ctx.controlChannels.delete(this);
  }

  private onClosed(code: number): void {
    if (!this.closed) this.ctx.stats.controlClosed(code);
    this.detach();
  }
}
