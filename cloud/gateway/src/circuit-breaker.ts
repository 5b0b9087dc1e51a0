/**
 * Per-site circuit breaker: when the relay keeps failing for a site (no listener, unreachable,
 * timeouts), new clients are refused at once for a backoff period instead of each one opening a
 * sender connection that is bound to fail. After the backoff one probe connection is let through
 * (half-open); its success closes the circuit, its failure doubles the backoff (with jitter).
 *
 * The backoff stays short (at most 1 s by default): all it saves is the attempts of clients
 * knocking at a dead site, and a long one kept refusing clients for 10-14 s after a relay outage,
 * long after the site's listener was back (issue 11). A probe a second per site is nothing to the
 * relay; every client of a returned site being refused for seconds is.
 *
 * The steps are the project's one backoff (`lib/backoff.ts`): its jitter only shortens a step, so
 * the cap holds (the breaker's own symmetric jitter kept a circuit open up to 20 % past it).
 */
import { type BackoffPolicy, backoffDelay } from "../../../lib/backoff.ts";

export interface BreakerOptions {
  /** Consecutive failures that open the circuit. */
  threshold?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** 0..1: share of each backoff step that is random (shortening it), so gateways do not probe in lock-step. */
  jitter?: number;
  now?: () => number;
  random?: () => number;
}

interface SiteState {
  failures: number;
  openUntil: number;
  /** Times the circuit opened in a row: the backoff step. */
  opened: number;
  probing: boolean;
}

export type BreakerState = "closed" | "open" | "half-open";

export class CircuitBreaker {
  private readonly sites = new Map<string, SiteState>();
  private readonly threshold: number;
  private readonly policy: BackoffPolicy;
  private readonly now: () => number;
  private readonly random: () => number;

  constructor(options: BreakerOptions = {}) {
    this.threshold = options.threshold ?? 5;
    const maxMs = options.maxBackoffMs ?? 1_000;
    this.policy = {
      initialMs: Math.min(options.initialBackoffMs ?? 1_000, maxMs),
      maxMs,
      factor: 2,
      jitter: options.jitter ?? 0.2,
    };
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
  }

  state(site: string): BreakerState {
    const s = this.sites.get(site);
    if (!s || s.openUntil === 0) return "closed";
    return this.now() < s.openUntil ? "open" : "half-open";
  }

  /** True when a connection to `site` may be attempted now. */
  tryAcquire(site: string): boolean {
    const s = this.sites.get(site);
    if (!s || s.openUntil === 0) return true;
    if (this.now() < s.openUntil) return false;
    if (s.probing) return false; // one probe at a time while half-open
    s.probing = true;
    return true;
  }

  onSuccess(site: string): void {
    this.sites.delete(site);
  }

  onFailure(site: string): void {
    let s = this.sites.get(site);
    if (!s) {
      s = { failures: 0, openUntil: 0, opened: 0, probing: false };
      this.sites.set(site, s);
    }
    s.failures++;
    const wasProbing = s.probing;
    s.probing = false;
    if (s.failures < this.threshold && !wasProbing) return;
    s.openUntil = this.now() + backoffDelay(this.policy, s.opened++, this.random);
  }

  /** Releases a probe that ended without a verdict (client went away before the relay answered). */
  release(site: string): void {
    const s = this.sites.get(site);
    if (s) s.probing = false;
  }

  /** Sites whose circuit is not closed, for metrics. */
  openSites(): number {
    let n = 0;
    for (const site of this.sites.keys()) if (this.state(site) !== "closed") n++;
    return n;
  }
}
