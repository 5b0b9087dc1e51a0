/**
 * Serializes the work on one site inside a rollout instance: every writer of a site (API calls,
 * device events, onboarding jobs) runs under its site's lock. Across instances, the ledger's
 * insert-if-absent and the idempotent steps keep things consistent.
 */
export type SiteLock = <T>(siteId: string, fn: () => Promise<T>) => Promise<T>;

export function createSiteLock(): SiteLock {
  const locks = new Map<string, Promise<unknown>>();
  return function withSiteLock<T>(siteId: string, fn: () => Promise<T>): Promise<T> {
    const prev = locks.get(siteId) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    locks.set(siteId, tail);
    void tail.then(() => {
      if (locks.get(siteId) === tail) locks.delete(siteId);
    });
    return run;
  };
}
