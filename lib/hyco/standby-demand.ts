/**
 * How many standby connections a pool should hold: the largest burst of streams set up at once,
 * remembered over two windows, within the pool's floor and ceiling
 * (docs/adr/0016-standby-pool-follows-demand.md). Pure bookkeeping: no sockets, no timers.
 */
import type { WebSocket } from "ws";

/** Demand is measured over this window and the previous one: a pool shrinks 10–20 s after a burst. */
export const DEMAND_WINDOW_MS = 10_000;

/**
 * Streams opened within this long of each other and still open count as one burst: a page's
 * parallel requests, a pool of database clients starting. Long sessions opened one by one (RDP,
 * SSH) keep the pool at its floor however many there are: a standby only helps connections that
 * come while it waits.
 */
export const BURST_INTERVAL_MS = 250;

/** Bound on the young ordinary streams remembered (far above any pool's ceiling). */
const MAX_TRACKED_ORDINARY = 1_024;

export class StandbyDemand {
  /** Most streams out at once (standbys lent + takers waiting) in this window and the last. */
  private demandNow = 0;
  private demandBefore = 0;
  private windowStart = 0;
  /** Streams on ordinary connections opened within the burst interval, oldest first. */
  private readonly ordinary: Array<{ ws: WebSocket | undefined; at: number }> = [];

  constructor(
    private readonly floor: number,
    private readonly ceiling: number,
    readonly windowMs = DEMAND_WINDOW_MS,
  ) {}

  /**
   * A take at `now`. Demand is how many streams were being set up at once: this one, the
   * `waiting` takers, and the streams opened within the last burst interval that are still open,
   * on a standby (`lentAt`: when each standby in use was taken) or on an ordinary connection
   * ({@link noteOrdinary}). Older streams do not count: a standby helps only connections that
   * arrive together, and long sessions opened one by one (RDP, SSH) would otherwise keep a spare
   * per session.
   */
  noteTake(now: number, waiting: number, lentAt: Iterable<{ takenAt: number }>): void {
    this.roll(now);
    while (this.ordinary.length > 0 && now - (this.ordinary[0] as { at: number }).at >= BURST_INTERVAL_MS)
      this.ordinary.shift();
    let young = waiting + 1;
    for (const use of lentAt) if (now - use.takenAt < BURST_INTERVAL_MS) young++;
    // A miss counts while it connects (no ws yet) and while its stream is open.
    for (const o of this.ordinary) if (!o.ws || o.ws.readyState === o.ws.OPEN) young++;
    this.demandNow = Math.max(this.demandNow, young);
  }

  /**
   * A take that found nothing: its caller connects through the rendezvous and hands the ws to
   * {@link noteOrdinary}. Recorded at once, in the same turn, so takes of one burst see each other.
   */
  noteMiss(): void {
    if (this.ordinary.length >= MAX_TRACKED_ORDINARY) this.ordinary.shift();
    this.ordinary.push({ ws: undefined, at: Date.now() });
  }

  /**
   * A stream that found no standby and went through the rendezvous: it counts towards demand
   * while it is young, like a standby in use.
   */
  noteOrdinary(ws: WebSocket): void {
    const connecting = this.ordinary.find((o) => o.ws === undefined);
    if (connecting) {
      connecting.ws = ws;
      return;
    }
    if (this.ordinary.length >= MAX_TRACKED_ORDINARY) this.ordinary.shift();
    this.ordinary.push({ ws, at: Date.now() });
  }

  /** Standbys to keep ready now: recent peak demand, within the floor and the ceiling. */
  target(now: number): number {
    this.roll(now);
    return Math.min(this.ceiling, Math.max(this.floor, this.demandNow, this.demandBefore));
  }

  /** Rolls the demand windows forward to `now`. */
  private roll(now: number): void {
    const elapsed = now - this.windowStart;
    if (elapsed < this.windowMs) return;
    this.demandBefore = elapsed < 2 * this.windowMs ? this.demandNow : 0;
    this.demandNow = 0;
    this.windowStart = now;
  }
}
