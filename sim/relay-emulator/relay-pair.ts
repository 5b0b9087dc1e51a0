/**
 * One relayed connection: the sender's and the listener's server-side WebSockets, joined message by
 * message (text stays text, binary stays binary, no splitting), with bounded buffering and close
 * frames carried end to end so half-close works (lib/hyco/ws-half-close.ts says why ws needs help).
 */
import WebSocket from "ws";
import { type ClosableLeg, takeOverClose } from "../../lib/hyco/ws-half-close.ts";
import type { RelayEmulatorOptions } from "./options.ts";
import type { Stats } from "./stats.ts";

export type LegName = "sender" | "listener";

export interface RelayPairInit {
  id: string;
  hybridConnection: string;
  sender: WebSocket;
  listener: WebSocket;
  options: RelayEmulatorOptions;
  stats: Stats;
  onEnd: (pair: RelayPair) => void;
}

interface Leg {
  name: LegName;
  closable: ClosableLeg;
  ended: boolean;
  pausedForPeer: boolean;
  timer: NodeJS.Timeout | undefined;
}

export class RelayPair {
  readonly id: string;
  readonly hybridConnection: string;
  private readonly legs: { sender: Leg; listener: Leg };
  private readonly options: RelayEmulatorOptions;
  private readonly stats: Stats;
  private readonly onEnd: (pair: RelayPair) => void;
  private finished = false;

  constructor(init: RelayPairInit) {
    this.id = init.id;
    this.hybridConnection = init.hybridConnection;
    this.options = init.options;
    this.stats = init.stats;
    this.onEnd = init.onEnd;
    const make = (name: LegName, ws: WebSocket): Leg => ({
      name,
      closable: takeOverClose(ws, (code, reason) => this.onCloseFrame(name, code, reason)),
      ended: false,
      pausedForPeer: false,
      timer: undefined,
    });
    this.legs = { sender: make("sender", init.sender), listener: make("listener", init.listener) };
    for (const leg of [this.legs.sender, this.legs.listener]) this.wire(leg);
    this.stats.activeConnections++;
    this.stats.totalConnections++;
  }

  private peer(leg: Leg): Leg {
    return leg === this.legs.sender ? this.legs.listener : this.legs.sender;
  }

  private wire(leg: Leg): void {
    const ws = leg.closable.ws;
    ws.on("error", () => {
      // 'close' follows; nothing else to do. The listener keeps ws from throwing.
    });
    ws.on("message", (data: Buffer, isBinary: boolean) => this.forward(leg, data, isBinary));
    ws.on("close", () => this.onLegClosed(leg));
  }

  private forward(from: Leg, data: Buffer, isBinary: boolean): void {
    const to = this.peer(from);
    const target = to.closable.ws;
    if (to.closable.closeSent || target.readyState !== WebSocket.OPEN) return; // peer is gone: drop
    const length = data.length;
    if (from.name === "sender") this.stats.bytesSenderToListener += length;
    else this.stats.bytesListenerToSender += length;
    this.stats.messagesRelayed++;
    target.send(data, { binary: isBinary }, () => this.maybeResume(from));
    const buffered = target.bufferedAmount;
    if (buffered > this.stats.peakBufferedBytes) this.stats.peakBufferedBytes = buffered;
    if (buffered > this.options.highWaterMarkBytes && !from.pausedForPeer) {
      // Backpressure: stop reading this leg until the other leg's socket has drained.
      from.pausedForPeer = true;
      this.stats.backpressurePauses++;
      from.closable.ws.pause();
    }
  }

  private maybeResume(reader: Leg): void {
    if (!reader.pausedForPeer) return;
    const writer = this.peer(reader).closable.ws;
    if (writer.readyState === WebSocket.CLOSED || writer.bufferedAmount <= this.options.lowWaterMarkBytes) {
      reader.pausedForPeer = false;
      reader.closable.ws.resume();
    }
  }

  /** The peer of `name` sent a close frame: pass it on, and let the other side answer in its own time. */
  private onCloseFrame(name: LegName, code: number, reason: Buffer): void {
    const from = this.legs[name];
    const to = this.peer(from);
    if (!to.closable.closeSent && !to.ended) {
      to.closable.sendClose(code, reason);
      if (this.options.halfCloseTimeoutMs > 0) this.armTimer(to, this.options.halfCloseTimeoutMs);
    }
    // Reading from `from` is over; make sure a pause we applied does not wedge its FIN.
    from.pausedForPeer = false;
    if (from.closable.ws.readyState !== WebSocket.CLOSED) from.closable.ws.resume();
  }

  private armTimer(leg: Leg, ms: number): void {
    if (leg.timer) clearTimeout(leg.timer);
    leg.timer = setTimeout(() => leg.closable.ws.terminate(), ms);
    leg.timer.unref();
  }

  private onLegClosed(leg: Leg): void {
    leg.ended = true;
    if (leg.timer) clearTimeout(leg.timer);
    const peer = this.peer(leg);
    // A paused peer must be able to read its close/FIN now that nobody writes to `leg`.
    if (peer.pausedForPeer) {
      peer.pausedForPeer = false;
      if (peer.closable.ws.readyState !== WebSocket.CLOSED) peer.closable.ws.resume();
    }
    if (!peer.ended && peer.closable.closeSent && !peer.timer) {
      // Nobody is left to read what `peer` still sends after its half-close: give it closeTimeoutMs.
      this.armTimer(peer, this.options.closeTimeoutMs);
    } else if (!peer.ended && !peer.closable.closeSent) {
      // `leg` vanished without a close frame (or before its close was answered): 1006 → 1001/1011.
      const code = leg.closable.closeReceived ? 1000 : this.options.abnormalCloseCode;
      const reason = leg.closable.closeReceived ? "" : `${leg.name} disconnected`;
      peer.closable.sendClose(code, reason);
      this.armTimer(peer, this.options.closeTimeoutMs);
    }
    if (this.legs.sender.ended && this.legs.listener.ended) this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.stats.activeConnections--;
    this.onEnd(this);
  }

  /** Fault injection / shutdown: close both legs with `code` (or cut the TCP connections at once). */
  cut(code: number | "terminate", reason = "connection cut by the relay"): void {
    for (const leg of [this.legs.sender, this.legs.listener]) {
      if (leg.ended) continue;
      if (code === "terminate") {
        leg.closable.ws.terminate();
      } else {
        leg.closable.sendClose(code, reason);
        this.armTimer(leg, this.options.closeTimeoutMs);
      }
    }
  }
}
