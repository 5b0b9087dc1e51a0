/**
 * How the onboarding queue (onboarding-queue.ts, ADR 0024) paces itself: apart from the queue, so
 * the rollout's dependencies (context.ts) can carry them without importing the queue.
 */
export interface OnboardingQueueOptions {
  /**
   * Sites onboarded at once (default 64): enough to cover each site's round trips at the pace the
   * hub pacing allows; the pacing, not this, keeps the hub's quotas.
   */
  concurrency?: number;
  /**
   * Devices one bulk call creates (default and most: 100; the app takes a tenth of the registry's
   * burst where that is less, 10 of S1's 100 a minute, so the single operations queued behind a
   * bulk call in its class do not wait long; config.ts).
   */
  batchSize?: number;
  /** Attempts per site before a passing failure is final (default 5). */
  maxAttempts?: number;
  /** Wait before a site's retry, doubled per attempt (default 5 s). */
  retryDelayMs?: number;
  /** Finished jobs kept for callers to read (default 50, oldest dropped first). */
  keepJobs?: number;
}
