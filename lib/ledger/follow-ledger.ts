/**
 * Following the port ledger by its changes, so a gateway's steady-state reading cost does not grow
 * with the fleet (issue 18; ADR 0015). Table storage stamps every write with a server-side
 * `Timestamp`; after one full read, each poll asks only for rows written since shortly before the
 * previous poll started. Deletions leave no row to find, so the ledger writes a tombstone in the
 * `deleted` partition before it deletes a site or route row (lib/ledger/ledger.ts); the rollout's
 * reconcile prunes tombstones after a day.
 *
 * Why a window and not "since the newest Timestamp seen": Timestamps are taken when a write is
 * committed on the storage node serving its partition, so a write can become visible after a
 * later-stamped one on another partition. Re-asking for the last `windowMs` (server time, from the
 * answer's `Date` header) catches those; with a window shorter than the poll period each change
 * is read at most twice.
 *
 * A row deleted by hand (no tombstone) is only noticed at the next full read, every
 * `fullReadIntervalMs` (default 6 h, well inside the tombstone retention).
 */
import { odata, type TableClient } from "@azure/data-tables";
import { type LedgerSnapshot, parseLedgerRows } from "./read-routes.ts";
import { ROUTE_PARTITION, SITE_PARTITION, TOMBSTONE_PARTITION, tombstoneKey } from "./schema.ts";
import { statusOf } from "./table.ts";

type Entity = Record<string, unknown>;

export interface LedgerFollowerOptions {
  /** How far before the previous poll's start each poll reaches back (default 15 s). */
  windowMs?: number;
  /** Full re-read period (default 6 h); must stay below the tombstone retention (24 h). */
  fullReadIntervalMs?: number;
  /** Called after every successful query (metrics). */
  onRead?: (read: { kind: "full" | "delta"; rows: number }) => void;
  /** Clock, for tests. */
  now?: () => number;
}

/** What the follower has read so far (for metrics and the scale benchmark). */
export interface LedgerReadStats {
  fullReads: number;
  deltaReads: number;
  /** Entities returned by every query, tombstones included. */
  rowsRead: number;
}

export const DEFAULT_FOLLOW_WINDOW_MS = 15_000;
export const DEFAULT_FULL_READ_INTERVAL_MS = 6 * 3_600_000;

/** A Timestamp in a form that sorts as time does (7 fraction digits, as Table storage writes). */
export function timestampKey(value: unknown): string {
  if (value instanceof Date) return timestampKey(value.toISOString());
  if (typeof value !== "string") return "";
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d{1,7}))?Z$/.exec(value);
  if (!m) return value;
  return `${m[1]}.${(m[2] ?? "").padEnd(7, "0")}Z`;
}

/** Rows are kept under their tombstone's RowKey, so a tombstone names the row it removes. */
const rowId = tombstoneKey;

/**
 * Applies changed entities (rows and tombstones, any order) to `rows`, keyed `<pk>~<rk>`; a
 * tombstone removes a row only if it is newer than the row, so a row re-created after its deletion
 * survives. Returns whether anything changed. Pure apart from `rows`.
 */
export function applyLedgerChanges(rows: Map<string, Entity>, changes: Iterable<Entity>): boolean {
  const sorted = [...changes].sort((a, b) =>
    timestampKey(a.timestamp).localeCompare(timestampKey(b.timestamp)),
  );
  let changed = false;
  for (const entity of sorted) {
    const stamp = timestampKey(entity.timestamp);
    if (entity.partitionKey === TOMBSTONE_PARTITION) {
      const id = String(entity.rowKey ?? "");
      const existing = rows.get(id);
      if (existing && timestampKey(existing.timestamp) < stamp) {
        rows.delete(id);
        changed = true;
      }
      continue;
    }
    if (entity.partitionKey !== SITE_PARTITION && entity.partitionKey !== ROUTE_PARTITION) continue;
    const id = rowId(String(entity.partitionKey), String(entity.rowKey ?? ""));
    const existing = rows.get(id);
    // A query answers a row's current state, so only an unchanged ETag (a row re-read inside the
    // window) is no change.
    if (existing && existing.etag === entity.etag) continue;
    rows.set(id, entity);
    changed = true;
  }
  return changed;
}

/** Reads the ledger in full once, then by changes; owns the rows it has seen. */
export class LedgerFollower {
  readonly stats: LedgerReadStats = { fullReads: 0, deltaReads: 0, rowsRead: 0 };
  private readonly rows = new Map<string, Entity>();
  private snapshot: LedgerSnapshot | undefined;
  /** Server time (ms) of the previous successful poll's start, minus the window. */
  private since: number | undefined;
  private lastFullRead = 0;
  private readonly windowMs: number;
  private readonly fullReadIntervalMs: number;
  private readonly now: () => number;
  private readonly onRead: LedgerFollowerOptions["onRead"];

  constructor(
    private readonly client: TableClient,
    options: LedgerFollowerOptions = {},
  ) {
    this.onRead = options.onRead;
    this.windowMs = options.windowMs ?? DEFAULT_FOLLOW_WINDOW_MS;
    this.fullReadIntervalMs = options.fullReadIntervalMs ?? DEFAULT_FULL_READ_INTERVAL_MS;
    this.now = options.now ?? Date.now;
  }

  /**
   * The ledger as of now. Throws when storage is unreachable (the caller keeps its last good
   * table); an unchanged ledger answers the same snapshot object as before.
   */
  async read(): Promise<LedgerSnapshot> {
    const full = this.since === undefined || this.now() - this.lastFullRead >= this.fullReadIntervalMs;
    // odata (the SDK's filter builder) quotes and escapes each value: no hand-written quoting.
    const filter = full
      ? odata`PartitionKey eq ${SITE_PARTITION} or PartitionKey eq ${ROUTE_PARTITION}`
      : odata`(PartitionKey eq ${SITE_PARTITION} or PartitionKey eq ${ROUTE_PARTITION} or PartitionKey eq ${TOMBSTONE_PARTITION}) and Timestamp gt ${new Date(this.since ?? 0)}`;
    let serverDate: number | undefined;
    const entities: Entity[] = [];
    let noTable = false;
    try {
      const pages = this.client.listEntities<Entity>({
        queryOptions: { filter },
        onResponse: (response) => {
          const date = Date.parse(response.headers.get("date") ?? "");
          serverDate ??= Number.isNaN(date) ? undefined : date;
        },
      });
      for await (const entity of pages) entities.push(entity);
    } catch (err) {
      // No table yet (a fresh environment, before the rollout's first write) is an empty ledger.
      if (statusOf(err) !== 404) throw err;
      noTable = true;
    }
    this.stats.rowsRead += entities.length;
    // The Date header has whole seconds: one more second keeps the window whole.
    const started = (serverDate ?? this.now()) - 1_000;
    let changed: boolean;
    if (full || noTable) {
      if (full) this.stats.fullReads++;
      else this.stats.deltaReads++;
      this.rows.clear();
      applyLedgerChanges(this.rows, entities);
      this.lastFullRead = this.now();
      changed = true;
    } else {
      this.stats.deltaReads++;
      changed = applyLedgerChanges(this.rows, entities);
    }
    this.since = started - this.windowMs;
    this.onRead?.({ kind: full ? "full" : "delta", rows: entities.length });
    if (changed || !this.snapshot) this.snapshot = parseLedgerRows(this.rows.values());
    return this.snapshot;
  }
}
