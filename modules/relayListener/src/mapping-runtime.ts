/**
 * The running side of one mapping: its current configuration, state, counters and live
 * connections. The reconciler owns these objects; connections only update counters.
 */
import type { MappingConfig, MappingState, ReportedMapping } from "../../../lib/twin/index.ts";
import { MAX_REPORTED_MAPPING_ERROR } from "../../../lib/twin/index.ts";

/** One relayed connection, from accept to the end of its pump. */
export interface LiveConnection {
  /** Closes both sides now (drain timeout, `close` policy, shutdown). */
  abort(reason: string): void;
  /** Settles when the connection is fully closed. */
  readonly done: Promise<void>;
}

export class MappingRuntime {
  state: MappingState;
  /** Why the allowlist refused the target (state `refused`). */
  refusal: string | undefined;
  readonly live = new Set<LiveConnection>();
  totalConnections = 0;
  rejectedConnections = 0;
  bytesIn = 0;
  bytesOut = 0;
  lastError: string | null = null;

  constructor(
    readonly name: string,
    public config: MappingConfig,
  ) {
    this.state = config.enabled ? "active" : "disabled";
  }

  /** New connections are accepted only in these states (`error` keeps trying the target). */
  get accepting(): boolean {
    return this.state === "active" || this.state === "error";
  }

  get atLimit(): boolean {
    return this.config.maxConnections > 0 && this.live.size >= this.config.maxConnections;
  }

  recordError(message: string): void {
    this.lastError = message.slice(0, MAX_REPORTED_MAPPING_ERROR);
  }

  /**
   * Ends the live connections: `close` aborts them now; `drain` lets them finish and aborts what
   * is left after `timeoutMs`. Resolves when none is left.
   */
  async drain(policy: "drain" | "close", timeoutMs: number, reason: string): Promise<void> {
    const conns = [...this.live];
    if (conns.length === 0) return;
    if (policy === "close" || timeoutMs === 0) {
      for (const c of conns) c.abort(reason);
    } else {
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<void>((r) => {
        timer = setTimeout(r, timeoutMs);
      });
      await Promise.race([Promise.all(conns.map((c) => c.done)), timedOut]);
      clearTimeout(timer);
      for (const c of this.live) c.abort(`${reason} (drain timeout)`);
    }
    await Promise.all(conns.map((c) => c.done));
  }

  report(): ReportedMapping {
    return {
      state: this.state,
      target: this.config.target,
      activeConnections: this.live.size,
      totalConnections: this.totalConnections,
      rejectedConnections: this.rejectedConnections,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      lastError:
        this.state === "refused" ? (this.refusal ?? "").slice(0, MAX_REPORTED_MAPPING_ERROR) : this.lastError,
    };
  }
}
