/**
 * Per-route counters that must survive reloads: live connections (for the cap), live connections
 * per client address (for the per-source cap) and the rate limiter. Keyed by route key, so a
 * reload that changes a route's limits keeps its live counts; entries of removed routes go once
 * their last connection ends. An address's entry goes with its last connection, so the map is
 * bounded by live connections, never by how many addresses ever came.
 */
import { RateLimiter } from "./rate-limiter.ts";

interface State {
  active: number;
  bySource: Map<string, number>;
  limiter: RateLimiter;
}

/** Why `acquire` said no. */
export type AcquireRefusal = "max_connections" | "max_connections_per_source";

export class RouteStates {
  private readonly states = new Map<string, State>();

  private get(key: string, ratePerMinute: number): State {
    let s = this.states.get(key);
    if (!s) {
      s = { active: 0, bySource: new Map(), limiter: new RateLimiter({ ratePerMinute }) };
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

  /**
   * Reserves a connection slot for `source` unless the route has `max` live connections or the
   * address has `perSource` (0 = no limit for either); returns the refusal otherwise.
   */
  acquire(
    key: string,
    limits: { max: number; perSource: number; ratePerMinute: number },
    source: string,
  ): AcquireRefusal | undefined {
    const s = this.get(key, limits.ratePerMinute);
    if (limits.max > 0 && s.active >= limits.max) return "max_connections";
    const mine = s.bySource.get(source) ?? 0;
    if (limits.perSource > 0 && mine >= limits.perSource) return "max_connections_per_source";
    s.active++;
    s.bySource.set(source, mine + 1);
    return undefined;
  }

  release(key: string, source: string): void {
    const s = this.states.get(key);
    if (!s) return;
    if (s.active > 0) s.active--;
    const mine = s.bySource.get(source) ?? 0;
    if (mine <= 1) s.bySource.delete(source);
    else s.bySource.set(source, mine - 1);
  }

  /** Live connections of `source` on the route. */
  activeFrom(key: string, source: string): number {
    return this.states.get(key)?.bySource.get(source) ?? 0;
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
