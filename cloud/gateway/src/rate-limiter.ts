/**
 * Per-source connection-rate limit of one route: a token bucket per client address, `rate`
 * connections per minute with a burst of the same size. Buckets that have refilled completely
 * carry no information and are dropped by `sweep`, and the map is capped, so a scan from many
 * addresses cannot grow memory without bound.
 */
export interface RateLimiterOptions {
  ratePerMinute: number;
  /** Most addresses tracked at once; beyond it new addresses are refused until a sweep frees room. */
  maxSources?: number;
  now?: () => number;
}

interface Bucket {
  tokens: number;
  updatedAt: number;
}

export class RateLimiter {
  readonly ratePerMinute: number;
  private readonly buckets = new Map<string, Bucket>();
  private readonly maxSources: number;
  private readonly now: () => number;
  private readonly perMs: number;

  constructor(options: RateLimiterOptions) {
    this.ratePerMinute = options.ratePerMinute;
    this.maxSources = options.maxSources ?? 100_000;
    this.now = options.now ?? Date.now;
    this.perMs = options.ratePerMinute / 60_000;
  }

  /** Takes one token for `source`; false means the connection must be refused. 0 = unlimited. */
  take(source: string): boolean {
    if (this.ratePerMinute <= 0) return true;
    const now = this.now();
    let bucket = this.buckets.get(source);
    if (!bucket) {
      if (this.buckets.size >= this.maxSources) {
        this.sweep();
        if (this.buckets.size >= this.maxSources) return false;
      }
      bucket = { tokens: this.ratePerMinute, updatedAt: now };
      this.buckets.set(source, bucket);
    } else {
      bucket.tokens = Math.min(this.ratePerMinute, bucket.tokens + (now - bucket.updatedAt) * this.perMs);
      bucket.updatedAt = now;
    }
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  /** Drops buckets that would be full by now (they behave exactly like an absent one). */
  sweep(): void {
    const now = this.now();
    for (const [source, b] of this.buckets) {
      if (b.tokens + (now - b.updatedAt) * this.perMs >= this.ratePerMinute) this.buckets.delete(source);
    }
  }

  get trackedSources(): number {
    return this.buckets.size;
  }
}
