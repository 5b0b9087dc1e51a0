/**
 * The gateway: loads the routing table from the port ledger, listens on its public ports, and
 * hot-reloads as a diff (open new ports, close removed ones, re-route changed ones for new
 * connections) without touching live tunnels. A failed reload keeps the last good table; a
 * bad row is skipped and logged. `drain()` stops listening and waits, bounded, for live tunnels.
 */
import { createServer, type Server, type Socket } from "node:net";
import { type BackoffPolicy, backoffDelay } from "../../../lib/backoff.ts";
import { errorMessage } from "../../../lib/errors.ts";
import type { UnboundPort } from "../../../lib/ledger/gateway-status.ts";
import type { LedgerSnapshot } from "../../../lib/ledger/read-routes.ts";
import type { Logger } from "../../../lib/log.ts";
import { type BreakerOptions, CircuitBreaker } from "./circuit-breaker.ts";
import { type ConnectionContext, handleConnection, type OpenTunnel } from "./connection.ts";
import type { GatewayMetrics } from "./metrics.ts";
import { RouteStates } from "./route-state.ts";
import {
  buildRoutingTable,
  diffRoutes,
  emptyTable,
  type Route,
  type RouteDiff,
  type RouteLimits,
  type RoutingTable,
} from "./routing-table.ts";

export interface GatewayOptions {
  /** Reads the ledger (one query); throws when storage is unreachable. */
  loadLedger: () => Promise<LedgerSnapshot>;
  openTunnel: OpenTunnel;
  metrics: GatewayMetrics;
  log: Logger;
  /** Address the public ports bind to (default all interfaces). */
  bindHost?: string;
  /** Periodic re-read of the ledger; 0 disables (reload only on demand). */
  reloadIntervalMs?: number;
  /**
   * Least time between the starts of two ledger reads (default 250 ms): however many reloads are
   * asked for, the ledger is read at most once per this period.
   */
  reloadMinIntervalMs?: number;
  firstBytesTimeoutMs?: number;
  breaker?: BreakerOptions;
  /** Limits of routes whose row sets none (default lib/ledger/route-limits.ts). */
  routeDefaults?: RouteLimits;
  bindRetry?: BackoffPolicy;
  /** Called whenever what `unbound()` or `ready` answers may have changed (status reports). */
  onStateChange?: () => void;
}

interface UnboundState {
  error: string;
  since: number;
  attempts: number;
  timer?: NodeJS.Timeout;
}

/**
 * Retries of a public port that cannot be bound (taken by another process, or by an outgoing
 * connection's ephemeral port): soon at first, then every 5 s at most, jittered so that the
 * gateways of a fleet do not retry in step.
 */
export const BIND_RETRY_BACKOFF: BackoffPolicy = { initialMs: 1_000, maxMs: 5_000, factor: 2, jitter: 0.5 };

export interface ReloadResult {
  ok: boolean;
  diff?: RouteDiff;
  routes: number;
  ports: number[];
  problems: Array<{ partitionKey: string; rowKey: string; message: string }>;
  error?: string;
}

export class Gateway {
  private table: RoutingTable = emptyTable();
  private loaded = false;
  private draining = false;
  private readonly servers = new Map<number, Server>();
  /**
   * Ports whose server is listening, kept as servers start and stop: the gauge and the probes
   * read its size, as a scan of every server on every bind made loading N ports O(N²) (issue 18).
   */
  private readonly listeningSet = new Set<number>();
  /** Ports of the table that failed to bind, with their retry timers. */
  private readonly unboundPorts = new Map<number, UnboundState>();
  private readonly live = new Set<(reason: string) => void>();
  private readonly sockets = new Set<Socket>();
  private readonly states = new RouteStates();
  private readonly breaker: CircuitBreaker;
  private readonly ctx: ConnectionContext;
  /** The read under way, and the one every request arriving meanwhile waits for. */
  private reloading: Promise<ReloadResult> | undefined;
  private nextReload: Promise<ReloadResult> | undefined;
  private lastReadStartedAt = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: GatewayOptions) {
    this.breaker = new CircuitBreaker(options.breaker);
    this.ctx = {
      table: () => this.table,
      draining: () => this.draining,
      firstBytesTimeoutMs: options.firstBytesTimeoutMs ?? 10_000,
      openTunnel: options.openTunnel,
      states: this.states,
      breaker: this.breaker,
      metrics: options.metrics,
      log: options.log,
      track: (abort) => {
        this.live.add(abort);
        return () => this.live.delete(abort);
      },
    };
  }

  /** Ready = a routing table has been loaded at least once (possibly empty) and not draining. */
  get ready(): boolean {
    return this.loaded && !this.draining;
  }

  /** Ledger rows the last routing table skipped (a bad CIDR, an unknown site, …), for /readyz. */
  get badRows(): ReadonlyArray<{ partitionKey: string; rowKey: string; message: string }> {
    return this.table.problems;
  }

  /** Live tunnels (for drain and tests). */
  get liveTunnels(): number {
    return this.live.size;
  }

  /** How many public ports are listening (O(1); for probes, the status row and metrics). */
  get listeningCount(): number {
    return this.listeningSet.size;
  }

  /** Ports currently listening, with their bound address. */
  listening(): Array<{ port: number; address: string }> {
    return [...this.servers.entries()]
      .filter(([, s]) => s.listening)
      .map(([port, s]) => ({ port, address: (s.address() as { address: string }).address }));
  }

  /** Public ports of the routing table that cannot be bound right now (retried on their own). */
  unbound(): UnboundPort[] {
    return [...this.unboundPorts.entries()]
      .sort(([a], [b]) => a - b)
      .map(([port, u]) => ({
        port,
        error: u.error,
        since: new Date(u.since).toISOString(),
        attempts: u.attempts,
      }));
  }

  /** First load (retried by the periodic reload if it fails) and the reload timer. */
  async start(): Promise<ReloadResult> {
    const result = await this.reload();
    const every = this.options.reloadIntervalMs ?? 30_000;
    if (every > 0) {
      this.timer = setInterval(() => void this.reload(), every);
      this.timer.unref();
    }
    return result;
  }

  /**
   * Re-reads the ledger and applies the diff. Every caller gets the result of a read that began
   * after its call, yet requests coalesce: one read at a time, and the reads start at least
   * `reloadMinIntervalMs` apart, so a flood of `POST /reload` costs a few reads, not one each.
   */
  reload(): Promise<ReloadResult> {
    if (this.nextReload) return this.nextReload;
    const interval = this.options.reloadMinIntervalMs ?? 250;
    if (!this.reloading && Date.now() >= this.lastReadStartedAt + interval) return this.startRead();
    const previous = this.reloading;
    this.nextReload = (async () => {
      await previous; // doReload never rejects
      const wait = this.lastReadStartedAt + interval - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      this.nextReload = undefined;
      return this.startRead();
    })();
    return this.nextReload;
  }

  private startRead(): Promise<ReloadResult> {
    this.lastReadStartedAt = Date.now();
    const run = this.doReload().finally(() => {
      if (this.reloading === run) this.reloading = undefined;
    });
    this.reloading = run;
    return run;
  }

  private async doReload(): Promise<ReloadResult> {
    const { log, metrics } = this.options;
    let next: RoutingTable;
    try {
      next = buildRoutingTable(await this.options.loadLedger(), Date.now(), this.options.routeDefaults);
    } catch (err) {
      metrics.reloads.inc({ result: "failed" });
      log.error(
        { event: "reload-failed", err: errorMessage(err) },
        "ledger read failed; keeping the last good routing table",
      );
      return {
        ok: false,
        routes: this.table.routeCount,
        ports: [...this.table.ports.keys()],
        problems: [],
        error: errorMessage(err),
      };
    }
    if (this.draining) return { ok: false, routes: 0, ports: [], problems: [], error: "draining" };
    const diff = diffRoutes(this.table, next);
    for (const p of next.problems) log.warn({ event: "bad-row", ...p }, "ledger row skipped");
    // Swap first: a connection arriving on a port from now on is routed by the new table.
    this.table = next;
    this.loaded = true;
    // Open what is new; a port whose bind failed is retried by its own timer, not here.
    const toOpen = [...next.ports.keys()].filter(
      (port) => !this.servers.get(port)?.listening && !this.unboundPorts.get(port)?.timer,
    );
    await Promise.all(toOpen.map((port) => this.openPort(port)));
    for (const port of diff.close) this.closePort(port);
    this.states.prune(
      new Set(
        [...next.ports.values()].flatMap((s) =>
          s.kind === "tcp" ? [s.route.key] : [...s.tls.values(), ...s.http.values()].map((r) => r.key),
        ),
      ),
    );
    this.publishLimits(next);
    metrics.routes.set(next.routeCount);
    metrics.badRows.set(next.problems.length);
    this.publishPorts();
    metrics.reloads.inc({ result: "ok" });
    this.options.onStateChange?.();
    if (diff.open.length + diff.close.length + diff.update.length > 0 || next.problems.length > 0)
      log.info(
        { event: "reloaded", ...diff, routes: next.routeCount, badRows: next.problems.length },
        "routing table applied",
      );
    return {
      ok: true,
      diff,
      routes: next.routeCount,
      ports: [...next.ports.keys()].sort((a, b) => a - b),
      problems: next.problems,
    };
  }

  /** `gateway_route_limit` for every route of the table (removed routes drop out). */
  private publishLimits(table: RoutingTable): void {
    const gauge = this.options.metrics.routeLimit;
    gauge.reset();
    const routes: Route[] = [...table.ports.values()].flatMap((s) =>
      s.kind === "tcp" ? [s.route] : [...s.tls.values(), ...s.http.values()],
    );
    for (const r of routes) {
      gauge.set({ route: r.key, limit: "max_connections" }, r.maxConnections);
      gauge.set({ route: r.key, limit: "max_connections_per_source" }, r.limits.maxConnectionsPerSource);
      gauge.set({ route: r.key, limit: "silent_timeout_seconds" }, r.limits.silentTimeoutMs / 1000);
      gauge.set({ route: r.key, limit: "idle_timeout_seconds" }, r.limits.idleTimeoutMs / 1000);
    }
  }

  private publishPorts(): void {
    this.options.metrics.listeningPorts.set(this.listeningSet.size);
    this.options.metrics.unboundPorts.set(this.unboundPorts.size);
  }

  private openPort(port: number): Promise<void> {
    const { log, metrics } = this.options;
    const existing = this.servers.get(port);
    if (existing) existing.close();
    this.listeningSet.delete(port);
    const server = createServer(
      // allowHalfOpen: a client FIN is a half-close the pump carries to the site, not the end.
      { allowHalfOpen: true, noDelay: true, keepAlive: true, keepAliveInitialDelay: 60_000 },
      (socket) => {
        this.sockets.add(socket);
        socket.once("close", () => this.sockets.delete(socket));
        void handleConnection(this.ctx, port, socket);
      },
    );
    this.servers.set(port, server);
    return new Promise((resolve) => {
      server.once("error", (err) => {
        // EADDRINUSE / EACCES: the route stays in the table; the port is retried on its own
        // backoff and reported (metrics, /readyz, the status row) until it binds.
        if (this.servers.get(port) === server) this.servers.delete(port);
        const failed = this.unboundPorts.get(port) ?? { error: "", since: Date.now(), attempts: 0 };
        failed.attempts++;
        failed.error = errorMessage(err);
        this.unboundPorts.set(port, failed);
        metrics.bindFailures.inc({ port: String(port) });
        const delay = backoffDelay(this.options.bindRetry ?? BIND_RETRY_BACKOFF, failed.attempts - 1);
        // Logged at the first failure and then every tenth, not on every retry.
        if (failed.attempts === 1 || failed.attempts % 10 === 0)
          log.error(
            { event: "listen-failed", port, err: failed.error, attempts: failed.attempts, retryInMs: delay },
            "cannot listen on public port; retrying",
          );
        failed.timer = setTimeout(() => {
          failed.timer = undefined;
          if (this.draining || !this.table.ports.has(port) || this.servers.get(port)?.listening) return;
          void this.openPort(port);
        }, delay);
        failed.timer.unref();
        this.publishPorts();
        this.options.onStateChange?.();
        resolve();
      });
      server.listen({ port, host: this.options.bindHost ?? "0.0.0.0", backlog: 4096 }, () => {
        server.on("error", (err) => log.error({ port, err: errorMessage(err) }, "listener error"));
        if (this.servers.get(port) === server) this.listeningSet.add(port);
        const failed = this.unboundPorts.get(port);
        this.unboundPorts.delete(port);
        // A port bound at a reload is named in that reload's `reloaded` line: one line per port
        // would be 10,000 lines per start of a large gateway. A port that binds after failing is
        // news of its own.
        if (failed)
          log.info(
            { event: "port-open", port, afterAttempts: failed.attempts + 1 },
            "listening on public port",
          );
        else log.debug({ event: "port-open", port }, "listening on public port");
        this.publishPorts();
        if (failed) this.options.onStateChange?.();
        resolve();
      });
    });
  }

  /** Stops accepting on a port (and stops retrying it); connections already accepted keep running. */
  private closePort(port: number): void {
    const failed = this.unboundPorts.get(port);
    if (failed) {
      clearTimeout(failed.timer);
      this.unboundPorts.delete(port);
    }
    const server = this.servers.get(port);
    this.listeningSet.delete(port);
    if (!server) return;
    this.servers.delete(port);
    server.close();
    // Named in the reload's `reloaded` line (or the `draining` one), so not logged one by one.
    this.options.log.debug({ event: "port-closed", port }, "stopped listening on public port");
  }

  /**
   * Graceful drain: stop listening everywhere, refuse new work, wait up to `timeoutMs` for
   * live tunnels to finish, then abort the rest. Resolves with the number aborted.
   */
  async drain(timeoutMs: number): Promise<number> {
    this.draining = true;
    if (this.timer) clearInterval(this.timer);
    for (const port of new Set([...this.servers.keys(), ...this.unboundPorts.keys()])) this.closePort(port);
    this.options.onStateChange?.();
    const deadline = Date.now() + timeoutMs;
    while (this.live.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const aborted = this.live.size;
    for (const abort of [...this.live]) abort("gateway shutting down");
    // Clients still in their first bytes or setup hold no tunnel; end them too.
    for (const socket of this.sockets) socket.destroy();
    return aborted;
  }

  /** Closes everything at once (tests). */
  async close(): Promise<void> {
    await this.drain(0);
  }
}
