import type { WebSocket } from "ws";
import { Heartbeat } from "./heartbeat.ts";

/**
 * Listener side: how many standby connections are held and for how long. `hold` admits one if
 * there is room and returns its release; `closeAll` ends them (module shutdown).
 */
export class StandbyGate {
  private readonly held = new Set<WebSocket>();
  private readonly heartbeat: Heartbeat;

  constructor(readonly limits: { max: number; idleMs: number; pingIntervalMs?: number }) {
    this.heartbeat = new Heartbeat(() => this.held, limits.pingIntervalMs);
  }

  hold(ws: WebSocket): (() => void) | undefined {
    if (this.held.size >= this.limits.max) return undefined;
    this.held.add(ws);
    this.heartbeat.start();
    return () => {
      this.held.delete(ws);
    };
  }

  get count(): number {
    return this.held.size;
  }

  closeAll(reason: string): void {
    this.heartbeat.stop();
    for (const ws of this.held) if (ws.readyState === ws.OPEN) ws.close(1001, reason);
    this.held.clear();
  }
}
