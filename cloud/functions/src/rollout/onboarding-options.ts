/**
 * How the onboarding queue (onboarding-queue.ts, ADR 0024) paces itself: apart from the queue, so
 * the rollout's dependencies (context.ts) can carry them without importing the queue.
 */
export interface OnboardingQueueOptions {
  /** Sites onboarded at once within a batch (default 4; the hub pacing bounds hub calls anyway). */
  concurrency?: number;
  /** Sites whose devices one bulk call creates (default and most: 100). */
  batchSize?: number;
  /** Attempts per site before a passing failure is final (default 5). */
  maxAttempts?: number;
  /** Wait before a site's retry, doubled per attempt (default 5 s). */
  retryDelayMs?: number;
  /** Finished jobs kept for callers to read (default 50, oldest dropped first). */
  keepJobs?: number;
}
