/**
 * Per-route counters that must survive reloads: live connections (for the cap) and the rate
 * limiter. Keyed by route key, so a reload that changes a route's limits keeps its live count;
 * entries of removed routes go once their last connection ends.
 */
import { RateLimiter } from "./rate-limiter.ts";

interface State {
  active: number;
  limiter: RateLimiter;
}

export class RouteStates {
  private readonly states = new Map<string, State>();

  private get(key: string, ratePerMinute: number): State {
    let s = this.states.get(key);
    if (!s) {
      s = { active: 0, limiter: new RateLimiter({ ratePerMinute }) };
      this.states.set(key, s);
    } else if (s.limiter.ratePerMinute !== ratePerMinute) {
      // A changed limit starts from a full bucket: simpler than rescaling, and errs towards allowing.
      s.limiter = new RateLimiter({ ratePerMinute });
    }
    return s;
  }

  /** Takes a rate token for `source` on the route. */
  allowRate(key: string, ratePerMinute: number, source: string): boolean {
    return this.get(key, ratePerMinute).limiter.take(source);
  }

  /** Reserves a connection slot unless `max` (0 = unlimited) live connections exist. */
  acquire(key: string, max: number, ratePerMinute: number): boolean {
    const s = this.get(key, ratePerMinute);
    if (max > 0 && s.active >= max) return false;
    s.active++;
    return true;
  }

  release(key: string): void {
    const s = this.states.get(key);
    if (s && s.active > 0) s.active--;
  }

  active(key: string): number {
    return this.states.get(key)?.active ?? 0;
  }

  /** Drops state of routes no longer in the table and idle; sweeps rate buckets. */
  prune(liveKeys: ReadonlySet<string>): void {
    for (const [key, s] of this.states) {
      if (!liveKeys.has(key) && s.active === 0) this.states.delete(key);
      else s.limiter.sweep();
    }
  }
}
