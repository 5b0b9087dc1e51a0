/**
 * One `accept` from the relay, handed to the listener's user: open the rendezvous WebSocket
 * (`accept()`) or refuse with a status (`reject()`, the reject-URL form; the relay answers 410).
 * The accept address is the credential, used as is, with no token.
 */
import type { IncomingMessage } from "node:http";
import { WebSocket } from "ws";
import { RelayFleetError } from "../errors.ts";
import type { AcceptMessage } from "./control-messages.ts";
import { errorForFailure, errorForStatus, relaySocketOptions } from "./sender.ts";
import { rejectUrl } from "./urls.ts";

export interface RendezvousSettings {
  ca?: string | Buffer;
  timeoutMs: number;
  unmasked: boolean;
  maxPayload: number;
}

export class AcceptRequest {
  /** Relay's connection id (`sb-hc-id`). */
  readonly id: string;
  /** Rendezvous address (a secret for ~30 s: do not log it). */
  readonly address: string;
  /** The sender's upgrade headers as the relay forwarded them. */
  readonly connectHeaders: Record<string, string>;
  /** The sender's address as the relay saw it. */
  readonly remoteEndpoint: { address?: string; port?: number } | undefined;
  private used = false;
  private readonly pending = new Set<WebSocket>();

  constructor(
    message: AcceptMessage,
    private readonly settings: RendezvousSettings,
    private readonly isClosed: () => boolean,
    /** Called once the request is answered (or its handshake failed). */
    private readonly onSettled: () => void = () => {},
  ) {
    this.id = message.id;
    this.address = message.address;
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(message.connectHeaders)) headers[k] = String(v);
    this.connectHeaders = headers;
    this.remoteEndpoint = message.remoteEndpoint;
  }

  /** The first subprotocol the sender offered, echoed on the rendezvous as hyco-ws does. */
  private protocol(): string | undefined {
    const entry = Object.entries(this.connectHeaders).find(
      ([k]) => k.toLowerCase() === "sec-websocket-protocol",
    );
    const first = entry?.[1].split(",")[0]?.trim();
    return first || undefined;
  }

  private claim(): void {
    if (this.used)
      throw new RelayFleetError(
        "RF_ERR_RELAY_ACCEPT_TWICE",
        `accept request ${this.id} was already answered`,
      );
    this.used = true;
    if (this.isClosed())
      throw new RelayFleetError("RF_ERR_RELAY_CLOSED", "listener closed before the connection was answered");
  }

  /** Tears down rendezvous handshakes still in flight (listener close). */
  abortPending(): void {
    for (const ws of this.pending) ws.terminate();
    this.pending.clear();
  }

  private open(url: string, protocol: string | undefined): WebSocket {
    const ws = new WebSocket(url, protocol ? [protocol] : [], relaySocketOptions({ ...this.settings, url }));
    this.pending.add(ws);
    ws.once("close", () => this.pending.delete(ws));
    return ws;
  }

  /** Opens the rendezvous WebSocket; resolves when it is open (never before, unlike hyco-ws). */
  accept(): Promise<WebSocket> {
    try {
      this.claim();
    } catch (err) {
      return Promise.reject(err);
    }
    const ws = this.open(this.address, this.protocol());
    return new Promise<WebSocket>((resolve, reject) => {
      const what = `rendezvous ${this.id}`;
      let settled = false;
      const done = (err?: RelayFleetError) => {
        if (settled) return;
        settled = true;
        ws.removeAllListeners("open");
        ws.removeAllListeners("unexpected-response");
        ws.removeAllListeners("error");
        ws.on("error", () => {}); // 'close' follows; the pump records errors itself
        this.pending.delete(ws);
        this.onSettled();
        if (err) {
          ws.terminate();
          reject(err);
        } else resolve(ws);
      };
      ws.once("open", () => {
        // The sender's first frame can arrive in the same read as the 101 (a busy listener):
        // ws would emit it on process.nextTick, before the caller's `.then` can attach a
        // listener. Paused now, before ws reads the socket, and resumed on the next macrotask,
        // after the caller's continuation has attached its reader: no byte is lost or held.
        ws.pause();
        setImmediate(() => ws.resume());
        done();
      });
      ws.once("unexpected-response", (_req: unknown, res: IncomingMessage) => {
        res.resume();
        done(errorForStatus(res.statusCode ?? 0, res.statusMessage ?? "", what));
      });
      ws.on("error", (err: Error) => done(errorForFailure(err, what)));
      ws.once("close", () => done(new RelayFleetError("RF_ERR_RELAY_CLOSED", `${what}: aborted`)));
    });
  }

  /**
   * Refuses the connection: the sender gets `status` and `description`. Resolves once the relay
   * confirmed with 410 Gone; rejects with a coded error otherwise.
   */
  reject(status: number, description: string): Promise<void> {
    try {
      this.claim();
    } catch (err) {
      return Promise.reject(err);
    }
    const code = Number.isInteger(status) && status >= 400 && status <= 599 ? status : 400;
    const ws = this.open(rejectUrl(this.address, code, description), undefined);
    return new Promise<void>((resolve, reject) => {
      const what = `reject ${this.id}`;
      let settled = false;
      const done = (err?: RelayFleetError) => {
        if (settled) return;
        settled = true;
        ws.removeAllListeners("error");
        ws.on("error", () => {});
        ws.terminate();
        this.onSettled();
        if (err) reject(err);
        else resolve();
      };
      ws.once("unexpected-response", (_req: unknown, res: IncomingMessage) => {
        res.resume();
        if (res.statusCode === 410) done();
        else done(errorForStatus(res.statusCode ?? 0, res.statusMessage ?? "", what));
      });
      ws.once("open", () =>
        done(
          new RelayFleetError("RF_ERR_RELAY_UNREACHABLE", `${what}: relay opened instead of answering 410`),
        ),
      );
      ws.on("error", (err: Error) => done(errorForFailure(err, what)));
      ws.once("close", () => done(new RelayFleetError("RF_ERR_RELAY_CLOSED", `${what}: aborted`)));
    });
  }
}
