import type { SenderOptions } from "./sender.ts";
import { StandbyPool, type StandbyPoolOptions } from "./standby-pool.ts";

/**
 * Pools per hybrid connection, created on first use. New credentials for a hybrid connection (a
 * rotated key) replace its pool, so no standby is opened with a key that is on its way out.
 */
export class StandbyPools {
  private readonly pools = new Map<string, { credentials: string; pool: StandbyPool }>();

  constructor(private readonly options: StandbyPoolOptions = {}) {}

  /** The pool of `sender`; pools that went idle are dropped on the way. */
  for(sender: SenderOptions): StandbyPool {
    const key = `${sender.endpoint}\n${sender.hybridConnection}`;
    const credentials = `${sender.keyName ?? ""}\n${sender.key ?? ""}`;
    const entry = this.pools.get(key);
    if (entry?.credentials === credentials) return entry.pool;
    entry?.pool.close();
    for (const [k, e] of this.pools) {
      if (!e.pool.idle) continue;
      e.pool.close(); // holds nothing; closed so that a caller still holding it cannot revive it
      this.pools.delete(k);
    }
    const pool = new StandbyPool(sender, this.options);
    this.pools.set(key, { credentials, pool });
    return pool;
  }

  /** Pools currently held (warm or holding standbys). */
  get count(): number {
    return this.pools.size;
  }

  /** Standby connections ready now, over all pools. */
  get ready(): number {
    let n = 0;
    for (const { pool } of this.pools.values()) n += pool.ready;
    return n;
  }

  close(): void {
    for (const { pool } of this.pools.values()) pool.close();
    this.pools.clear();
  }
}
