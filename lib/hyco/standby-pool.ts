/**
 * The sender's standby pool of one hybrid connection (lib/hyco/standby.ts describes the
 * protocol): opens standbys ahead of need, lends them to `openLogicalPort`, takes them back after
 * a clean stream, retires, pings and backs off. How many it holds is `standby-demand.ts`'s.
 */
import type { WebSocket } from "ws";
import { Backoff, spreadAbove } from "../backoff.ts";
import { hasErrorCode } from "../errors.ts";
import { Heartbeat } from "./heartbeat.ts";
import type { SenderOptions } from "./sender.ts";
import { CLOSE_STANDBY_FULL, STANDBY_PORT_NAME } from "./standby.ts";
import { StandbyDemand } from "./standby-demand.ts";
import { openLogicalPort, type StandbySource } from "./tunnel.ts";

export interface StandbyPoolOptions {
  /**
   * Fewest standby connections kept per hybrid connection while warm (default 2: one serves the
   * next stream while the other is still on its way back from the last).
   */
  size?: number;
  /**
   * Most standby connections kept (default 16, never below `size`). Between `size` and this, the
   * pool follows demand: as many as the largest burst of connections (open at once, each opened
   * within the last 250 ms) within the last `demandWindowMs` to `2 × demandWindowMs`,
   * so a burst of N finds N ready the next time (docs/adr/0016-standby-pool-follows-demand.md).
   */
  maxSize?: number;
  /** Demand is the peak of streams out at once over this window and the one before (default 10 s). */
  demandWindowMs?: number;
  /** Stay warm this long after the last connection (default 5 min). */
  warmForMs?: number;
  /** Retire a standby after this long (default 4 min, below the listener's default idle 5 min). */
  maxAgeMs?: number;
  /** Wait for the listener's answer to a standby preamble (default 10 s). */
  replyTimeoutMs?: number;
  /**
   * After a listener refused standbys (no support): ask again after this long (default 10 min),
   * lengthened at random by up to half, so gateways that were refused together ask again apart.
   */
  refusedBackoffMs?: number;
  /**
   * After a failed or limited attempt (relay down, listener full): the shortest first retry
   * (default 5 s, drawn from 5–10 s); it doubles per failure in a row up to `refusedBackoffMs`.
   */
  failureBackoffMs?: number;
  /** Called for every `take`: whether it got a standby (metrics). */
  onTake?: (hit: boolean) => void;
  /** Ping standbys this often; one without a pong by the next ping is dropped (default 30 s). */
  pingIntervalMs?: number;
}

/**
 * The refill waits this long after the connection that took a standby: that connection is still
 * setting up, and a new standby's handshake work would otherwise delay its first bytes.
 */
const REFILL_DELAY_MS = 1;

/**
 * A standby in use is expected back this soon (short streams: HTTP requests, queries); only after
 * this long is it replaced. Refilling at once would make every short stream cost a rendezvous.
 */
const RETURN_GRACE_MS = 100;

/**
 * A `take` with nothing ready waits this long for a standby that is on its way back (its stream's
 * local side has ended) or being opened, then connects as usual. Far below a fresh rendezvous
 * over a WAN; on loopback a stream comes back within a millisecond or two.
 */
const RETURN_WAIT_MS = 250;

/**
 * Default ceiling of a pool that follows demand: 16 concurrent streams per site and gateway (an HMI
 * page's or a connection-per-query client's burst) skip the rendezvous; the module holds up to
 * 64 standbys (STANDBY_MAX), enough for four gateways at the ceiling.
 */
const DEFAULT_MAX_STANDBYS = 16;

interface Spare {
  ws: WebSocket;
  retireTimer: NodeJS.Timeout;
  onGone: () => void;
}

/** The standby connections of one hybrid connection (one sender identity). */
export class StandbyPool implements StandbySource {
  private readonly spares: Spare[] = [];
  private opening = 0;
  /** Standbys handed out and not given back yet, with the time they were taken. */
  private readonly inUse = new Map<WebSocket, { takenAt: number; onClose: () => void; ending: boolean }>();
  /** `take` calls waiting for a standby being opened, first come first served. */
  private readonly waiters: ((ws: WebSocket | undefined) => void)[] = [];
  /** Standbys in use whose stream's local side has ended: expected back at once. */
  private ending = 0;
  private lastUseAt = Number.NEGATIVE_INFINITY;
  private pausedUntil = 0;
  /** Standby opens that failed in a row; each doubles the failure backoff's ceiling. */
  private readonly failures: Backoff;
  private closed = false;
  private fillTimer: NodeJS.Timeout | undefined;
  private readonly size: number;
  private readonly maxSize: number;
  /** How many standbys to hold (burst demand within floor and ceiling). */
  private readonly demand: StandbyDemand;
  private readonly warmForMs: number;
  private readonly maxAgeMs: number;
  private readonly replyTimeoutMs: number;
  private readonly refusedBackoffMs: number;
  private readonly failureBackoffMs: number;
  private readonly onTake: ((hit: boolean) => void) | undefined;
  private readonly heartbeat: Heartbeat;

  constructor(
    private readonly sender: SenderOptions,
    options: StandbyPoolOptions = {},
  ) {
    this.size = options.size ?? 2;
    this.maxSize = Math.max(this.size, options.maxSize ?? DEFAULT_MAX_STANDBYS);
    this.demand = new StandbyDemand(this.size, this.maxSize, options.demandWindowMs);
    this.warmForMs = options.warmForMs ?? 300_000;
    this.maxAgeMs = options.maxAgeMs ?? 240_000;
    this.replyTimeoutMs = options.replyTimeoutMs ?? 10_000;
    this.refusedBackoffMs = options.refusedBackoffMs ?? 600_000;
    this.failureBackoffMs = options.failureBackoffMs ?? 5_000;
    // Each delay is drawn from the upper half of its ceiling, so the first is never shorter than
    // failureBackoffMs: a site that refused (full, hung) is not asked again sooner than it said.
    this.failures = new Backoff({
      initialMs: 2 * this.failureBackoffMs,
      maxMs: this.refusedBackoffMs,
      jitter: 0.5,
    });
    this.onTake = options.onTake;
    this.heartbeat = new Heartbeat(() => this.spares.map((spare) => spare.ws), options.pingIntervalMs);
  }

  /**
   * An open standby connection the listener has answered, or `undefined` (connect as usual). With
   * none ready but one being opened, waits for that one: it is further along than a new connect
   * would be, and a second handshake would only compete with it for the same processes. Either
   * way this counts as use: the pool warms up, or stays warm, and refills.
   */
  async take(): Promise<WebSocket | undefined> {
    const ws = await this.takeOrWait();
    this.onTake?.(ws !== undefined);
    if (ws) this.lend(ws);
    return ws;
  }

  /**
   * Ends the use of a standby from `take` (its tunnel calls this). A `reusable` one (the pump's
   * clean boundary) goes back to the pool, or is closed when the pool has enough; one with
   * `leftovers` (the listener sent behind its end of stream) is closed; otherwise the pool just
   * counts it gone.
   */
  giveBack(ws: WebSocket, reusable: boolean, leftovers: Buffer[] = []): void {
    const use = this.inUse.get(ws);
    if (!use) return;
    this.inUse.delete(ws);
    if (use.ending) this.ending--;
    ws.off("close", use.onClose);
    if (reusable && ws.readyState === ws.OPEN && leftovers.length > 0) {
      ws.close(1002, "data after the end of stream"); // the listener broke the protocol
    } else if (reusable && ws.readyState === ws.OPEN) {
      if (!this.closed && (this.waiters.length > 0 || this.spares.length < this.target(Date.now()))) {
        this.add(ws);
        return;
      }
      ws.close(1000, "standby not needed");
    }
    this.scheduleFill();
    this.releaseWaiters();
  }

  /** The stream on `ws` (from `take`) ended its local side: the standby should be back shortly. */
  expectBack(ws: WebSocket): void {
    const use = this.inUse.get(ws);
    if (!use || use.ending) return;
    use.ending = true;
    this.ending++;
  }

  /** Waiters beyond what can still come (being opened, on the way back) connect as usual now. */
  private releaseWaiters(): void {
    while (this.waiters.length > this.opening + this.ending) this.waiters.pop()?.(undefined);
  }

  private lend(ws: WebSocket): void {
    const onClose = () => this.giveBack(ws, false);
    this.inUse.set(ws, { takenAt: Date.now(), onClose, ending: false });
    ws.once("close", onClose);
  }

  /**
   * A stream that found no standby and went through the rendezvous: it counts towards demand
   * while it is young, like a standby in use (`openLogicalPort` calls this).
   */
  noteOrdinary(ws: WebSocket): void {
    this.demand.noteOrdinary(ws);
  }

  /** Standbys to keep ready now: recent peak demand, within `size` … `maxSize`. */
  target(now = Date.now()): number {
    return this.demand.target(now);
  }

  /** A take that found nothing (see {@link StandbyDemand.noteMiss}). */
  private miss(): undefined {
    this.demand.noteMiss();
    return undefined;
  }

  private takeOrWait(): WebSocket | undefined | Promise<WebSocket | undefined> {
    if (this.closed) return undefined;
    this.lastUseAt = Date.now();
    this.demand.noteTake(this.lastUseAt, this.waiters.length, this.inUse.values());
    for (let spare = this.spares.shift(); spare; spare = this.spares.shift()) {
      this.release(spare);
      if (spare.ws.readyState === spare.ws.OPEN) {
        this.scheduleFill(RETURN_GRACE_MS);
        return spare.ws;
      }
    }
    this.scheduleFill();
    if (this.waiters.length >= this.opening + this.ending) return this.miss();
    return new Promise((resolve) => {
      const waiter = (ws: WebSocket | undefined) => {
        clearTimeout(timer);
        resolve(ws ?? this.miss());
      };
      const timer = setTimeout(() => {
        const index = this.waiters.indexOf(waiter);
        if (index >= 0) this.waiters.splice(index, 1);
        resolve(this.miss());
      }, RETURN_WAIT_MS);
      this.waiters.push(waiter);
    });
  }

  /** True once `close` was called. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Standby connections ready now. */
  get ready(): number {
    return this.spares.length;
  }

  /** Nothing held, nothing opening and not warm: the owner may drop this pool. */
  get idle(): boolean {
    return this.spares.length === 0 && this.opening === 0 && this.inUse.size === 0 && !this.warm(Date.now());
  }

  /** Closes every standby connection; the pool hands out none from now on. */
  close(): void {
    this.closed = true;
    clearTimeout(this.fillTimer);
    this.heartbeat.stop();
    for (const waiter of this.waiters.splice(0)) waiter(undefined);
    for (const spare of this.spares.splice(0)) {
      this.release(spare);
      spare.ws.close(1000, "standby pool closed");
    }
  }

  private warm(now: number): boolean {
    return now - this.lastUseAt <= this.warmForMs;
  }

  private scheduleFill(delayMs = REFILL_DELAY_MS): void {
    if (this.fillTimer || this.closed) return;
    this.fillTimer = setTimeout(() => {
      this.fillTimer = undefined;
      this.fill();
    }, delayMs);
    this.fillTimer.unref();
  }

  private fill(): void {
    const now = Date.now();
    if (this.closed || !this.warm(now)) return;
    if (now < this.pausedUntil) {
      this.scheduleFill(this.pausedUntil - now); // still warm: try again once the backoff is over
      return;
    }
    const target = this.target(now);
    // Demand fell (the windows moved on): the spares beyond it are closed, oldest first.
    while (this.spares.length > target) {
      const spare = this.spares[0] as Spare;
      this.drop(spare, "standby not needed");
    }
    // Standbys in use for less than the grace period are expected back and count as held.
    let returning = 0;
    for (const use of this.inUse.values()) if (now - use.takenAt < RETURN_GRACE_MS) returning++;
    while (this.spares.length + this.opening + returning < target) {
      this.opening++;
      openLogicalPort(this.sender, STANDBY_PORT_NAME, { replyTimeoutMs: this.replyTimeoutMs }).then(
        (tunnel) => {
          this.opening--;
          this.failures.reset();
          if (tunnel.takeHeld().length > 0) {
            // The listener sent behind its standby answer, which the protocol does not allow.
            tunnel.ws.close(1002, "unexpected data on a standby connection");
            this.releaseWaiters();
            this.pauseAfterFailure();
            return;
          }
          this.add(tunnel.ws);
        },
        (err: unknown) => {
          this.opening--;
          this.pausedUntil = Date.now() + this.backoffFor(err);
          this.releaseWaiters();
          this.scheduleFill();
        },
      );
    }
    // Above the floor the pool must also shrink when nobody takes: look again once the window moved.
    if (target > this.size) this.scheduleFill(this.demand.windowMs);
  }

  /**
   * A clean close without a reply is how a listener without standbys says "no such port": ask
   * again much later. Other failures (relay down, site hung or full) back off exponentially up to
   * the same ceiling, so a broken site costs a few attempts, not one every few seconds.
   */
  private backoffFor(err: unknown): number {
    const closeCode = (err as { closeCode?: number }).closeCode;
    if (hasErrorCode(err, "RF_ERR_TUNNEL_REFUSED") && closeCode !== CLOSE_STANDBY_FULL) {
      return spreadAbove(this.refusedBackoffMs);
    }
    return this.failures.next();
  }

  private add(ws: WebSocket): void {
    const waiter = this.waiters.shift();
    if (waiter) {
      waiter(ws); // its taker lends it
      this.scheduleFill(RETURN_GRACE_MS);
      return;
    }
    if (this.closed || !this.warm(Date.now())) {
      ws.close(1000, "standby not needed");
      return;
    }
    const spare: Spare = {
      ws,
      retireTimer: setTimeout(() => {
        this.drop(spare, "standby retired");
        this.scheduleFill();
      }, this.maxAgeMs),
      // Closed by the listener or the relay, or a listener that sends on a standby (which the
      // protocol does not allow): either way it is no longer usable. Replaced after the failure
      // backoff, so a listener that ends every standby at once cannot make the pool spin.
      onGone: () => {
        this.drop(spare, "unexpected data on a standby connection");
        this.pauseAfterFailure();
      },
    };
    spare.retireTimer.unref();
    ws.on("close", spare.onGone);
    ws.on("message", spare.onGone);
    this.spares.push(spare);
    this.heartbeat.start();
  }

  /**
   * A standby that broke the protocol or was closed under us: replaced only after the failure
   * backoff, so a listener that ends every standby at once cannot make the pool spin.
   */
  private pauseAfterFailure(): void {
    const pause = spreadAbove(this.failureBackoffMs);
    this.pausedUntil = Math.max(this.pausedUntil, Date.now() + pause);
    this.scheduleFill();
  }

  private drop(spare: Spare, reason: string): void {
    const index = this.spares.indexOf(spare);
    if (index >= 0) this.spares.splice(index, 1);
    this.release(spare);
    if (spare.ws.readyState === spare.ws.OPEN) spare.ws.close(1000, reason);
  }

  private release(spare: Spare): void {
    clearTimeout(spare.retireTimer);
    spare.ws.off("close", spare.onGone);
    spare.ws.off("message", spare.onGone);
  }
}
