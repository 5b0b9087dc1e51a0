import type { WebSocket } from "ws";
import { PING_INTERVAL_MS } from "./constants.ts";

/**
 * Pings idle standby connections: NATs and firewalls between a site and the relay drop TCP flows
 * that stay silent for minutes, without a word to either end, and a dead standby would only show
 * when a client's tunnel is due on it. A connection with no pong since the previous ping is
 * terminated (its owner sees the close and lets it go). Each side checks its own hop to the relay,
 * which answers pings itself and closes the other leg when one dies.
 */
export class Heartbeat {
  private readonly awaitingPong = new WeakSet<WebSocket>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly members: () => Iterable<WebSocket>,
    private readonly intervalMs = PING_INTERVAL_MS,
  ) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.beat(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One round: terminate the silent, ping the rest (public for tests). */
  beat(): void {
    for (const ws of this.members()) {
      if (ws.readyState !== ws.OPEN) continue;
      if (this.awaitingPong.has(ws)) {
        ws.terminate();
        continue;
      }
      this.awaitingPong.add(ws);
      ws.once("pong", () => this.awaitingPong.delete(ws));
      ws.ping();
    }
  }
}
