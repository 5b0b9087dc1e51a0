/**
 * Keeps what runs equal to the applied configuration, touching only what changed
 * (`diffConfig`): listeners are created, renewed or replaced for relay changes; mappings are
 * added, updated, disabled or drained one by one, so a change to one never disturbs another's
 * live connections. Applies are serialised; drains run in the background, bounded by
 * `drain.timeoutMs`.
 */
import { errorMessage } from "../../../lib/errors.ts";
import { keyFingerprint } from "../../../lib/hyco/sas.ts";
import { StandbyGate } from "../../../lib/hyco/standby-gate.ts";
import type { Logger } from "../../../lib/log.ts";
import {
  type ConfigChange,
  defaultConfig,
  diffConfig,
  logicalPortOf,
  MAX_REPORTED_ERRORS,
  type MappingConfig,
  parseTarget,
  type RelayConfig,
  type RelayListenerConfig,
  type ReportedListener,
  type ReportedMapping,
  type ReportedRelay,
  type TwinError,
  validateDesired,
} from "../../../lib/twin/index.ts";
import type { Allowlist } from "./allowlist.ts";
import { type ConnectionContext, serveConnection } from "./connection.ts";
import { MappingRuntime } from "./mapping-runtime.ts";
import type { AcceptRequestView, ListenerFactory, RelayListener } from "./relay-listener.ts";
import { StandingProblems } from "./standing-problems.ts";

export interface ReconcilerOptions {
  listenerFactory: ListenerFactory;
  listenerCount: number;
  allowlist: Allowlist;
  logger: Logger;
  preambleTimeoutMs: number;
  keepAliveMs: number;
  /** Standby connections held for senders (lib/hyco/standby.ts); absent or `max` 0: refused. */
  standby?: { max: number; idleMs: number };
  /** Something reportable changed (the reporter coalesces these). */
  changed?(): void;
  /**
   * The twin's `hubReconnect` part as applied (absent: none), at every desired version: the
   * module's hub reconnect slots take its phase (ADR 0031). Not a listener change, so no diff.
   */
  onHubReconnect?(hubReconnect: RelayListenerConfig["hubReconnect"]): void;
  onOutcome?: ConnectionContext["onOutcome"];
  onBytes?: ConnectionContext["onBytes"];
  onTunnelEnd?: ConnectionContext["onTunnelEnd"];
}

/** What the module runs, as reported properties and `getStatus` show it. */
export interface RunningState {
  appliedDesiredVersion: number | null;
  relay: ReportedRelay;
  mappings: Record<string, ReportedMapping>;
  errors: TwinError[];
}

const iso = (ms: number) => new Date(ms).toISOString();

export class Reconciler {
  config: RelayListenerConfig = defaultConfig();
  appliedDesiredVersion: number | null = null;
  private validationErrors: TwinError[] = [];
  readonly mappings = new Map<string, MappingRuntime>();
  /** Removed mappings whose connections are still draining. */
  readonly draining = new Set<MappingRuntime>();
  private listeners: RelayListener[] = [];
  private queue: Promise<void> = Promise.resolve();
  private stopping = false;
  private readonly background = new Set<Promise<void>>();
  private readonly ctx: ConnectionContext;
  private readonly problems: StandingProblems;

  constructor(private readonly opts: ReconcilerOptions) {
    this.problems = new StandingProblems(opts.logger);
    this.ctx = {
      findMapping: (name) => (this.stopping ? undefined : this.mappingForPort(name)),
      allowlist: opts.allowlist,
      logger: opts.logger,
      preambleTimeoutMs: opts.preambleTimeoutMs,
      keepAliveMs: opts.keepAliveMs,
      standby: opts.standby && opts.standby.max > 0 ? new StandbyGate(opts.standby) : undefined,
      changed: () => opts.changed?.(),
      onOutcome: opts.onOutcome,
      onBytes: opts.onBytes,
      onTunnelEnd: opts.onTunnelEnd,
    };
  }

  /**
   * The mapping a logical port name asks for: the one whose `portName` (default: its name) it is.
   * Like azbridge's own listener, a numeric name (what `azbridge -L 13389:relay` sends: its local
   * bind port) is served by the only mapping when there is exactly one, so azbridge senders
   * without port names work against a one-mapping site.
   */
  private mappingForPort(portName: string): MappingRuntime | undefined {
    for (const runtime of this.mappings.values())
      if (logicalPortOf(runtime.name, runtime.config) === portName) return runtime;
    if (this.mappings.size !== 1 || !/^[0-9]{1,10}$/.test(portName)) return undefined;
    return this.mappings.values().next().value;
  }

  /** Validates `raw` (the full desired document) against the last good config and applies it. */
  applyDesired(raw: unknown, version: number | null): Promise<void> {
    const run = async () => {
      if (this.stopping) return;
      const { config, errors } = validateDesired(raw, this.config);
      this.problems.update(errors, version);
      await this.apply(config);
      this.validationErrors = errors;
      this.appliedDesiredVersion = version;
      this.opts.changed?.();
    };
    this.queue = this.queue.then(run, run).catch((err) => {
      // Defensive: apply must never take the module down; the next desired document retries.
      this.opts.logger.error({ err: errorMessage(err) }, "applying desired properties failed");
    });
    return this.queue;
  }

  private async apply(next: RelayListenerConfig): Promise<void> {
    const changes = diffConfig(this.config, next);
    this.config = next;
    this.opts.onHubReconnect?.(next.hubReconnect);
    for (const change of changes) await this.applyChange(change);
    if (changes.length > 0)
      this.opts.logger.info({ changes: changes.map(describeChange) }, "configuration applied");
  }

  private async applyChange(change: ConfigChange): Promise<void> {
    switch (change.kind) {
      case "relay-added":
      case "relay-changed":
        await this.closeListeners();
        this.openListeners(change.relay);
        return;
      case "relay-removed":
        await this.closeListeners();
        return;
      case "relay-credentials":
        for (const l of this.listeners) l.updateCredentials(change.relay.sasKeyName, change.relay.sasKey);
        return;
      case "mapping-added": {
        const runtime = new MappingRuntime(change.name, change.mapping);
        this.mappings.set(change.name, runtime);
        if (runtime.config.enabled) await this.checkTarget(runtime);
        return;
      }
      case "mapping-removed": {
        const runtime = this.mappings.get(change.name);
        this.mappings.delete(change.name);
        if (runtime && runtime.live.size > 0) {
          runtime.state = "draining";
          this.draining.add(runtime);
          this.track(
            runtime
              .drain(this.config.drain.onRemove, this.config.drain.timeoutMs, "mapping removed")
              .then(() => {
                this.draining.delete(runtime);
                this.opts.changed?.();
              }),
          );
        }
        return;
      }
      case "mapping-updated":
      case "mapping-enabled": {
        const runtime = this.mappings.get(change.name);
        if (!runtime) return;
        runtime.config = change.mapping;
        if (change.kind === "mapping-enabled" || change.changed.includes("target")) {
          runtime.state = "active";
          runtime.refusal = undefined;
          await this.checkTarget(runtime);
        }
        return;
      }
      case "mapping-disabled": {
        const runtime = this.mappings.get(change.name);
        if (!runtime) return;
        runtime.config = change.mapping;
        runtime.state = "disabled";
        runtime.refusal = undefined;
        this.track(
          runtime.drain(this.config.drain.onRemove, this.config.drain.timeoutMs, "mapping disabled"),
        );
        return;
      }
      case "drain-changed":
        return;
    }
  }

  /** The local allowlist decides before any connection; refused mappings accept nothing. */
  private async checkTarget(runtime: MappingRuntime): Promise<void> {
    const { host, port } = parseTarget(runtime.config.target);
    const decision = await this.opts.allowlist.check(host, port);
    // The mapping may have changed while DNS answered; only the current config's verdict counts.
    if (this.mappings.get(runtime.name) !== runtime || !runtime.config.enabled) return;
    if (decision.allowed) {
      runtime.state = "active";
      runtime.refusal = undefined;
    } else if (decision.unresolved) {
      // Not resolvable now: keep accepting; every connection checks again before it connects.
      runtime.state = "error";
      runtime.recordError(decision.reason);
    } else {
      runtime.state = "refused";
      runtime.refusal = decision.reason;
      this.opts.logger.warn(
        { mapping: runtime.name, reason: decision.reason },
        "mapping refused by the local allowlist",
      );
    }
  }

  private openListeners(relay: RelayConfig): void {
    for (let i = 0; i < this.opts.listenerCount; i++) {
      const listener = this.opts.listenerFactory(relay, i);
      listener.on("state", () => this.opts.changed?.());
      listener.on("accept", (request) => this.onAccept(request));
      this.listeners.push(listener);
      listener.start();
    }
    this.opts.logger.info(
      {
        hybridConnection: relay.hybridConnection,
        listeners: this.opts.listenerCount,
        keyFingerprint: keyFingerprint(relay.sasKey),
      },
      "relay listeners started",
    );
    this.opts.changed?.();
  }

  private async closeListeners(): Promise<void> {
    const old = this.listeners;
    this.listeners = [];
    await Promise.all(
      old.map((l) =>
        l.close().catch((err) => this.opts.logger.warn({ err: errorMessage(err) }, "listener close failed")),
      ),
    );
    this.opts.changed?.();
  }

  private onAccept(request: AcceptRequestView): void {
    if (this.stopping) {
      void request.reject(503, "module shutting down").catch(() => {});
      return;
    }
    const task = request
      .accept()
      .then((ws) => serveConnection(ws, this.ctx))
      .catch((err) =>
        this.opts.logger.warn({ err: errorMessage(err) }, "accepting a relayed connection failed"),
      );
    this.track(task);
  }

  private track(p: Promise<void>): void {
    this.background.add(p);
    void p.finally(() => this.background.delete(p));
  }

  /** Closes and re-opens the relay listeners (direct method `reconnect`). */
  reconnect(): Promise<void> {
    const run = async () => {
      await this.closeListeners();
      if (this.config.relay && !this.stopping) this.openListeners(this.config.relay);
    };
    this.queue = this.queue.then(run, run);
    return this.queue;
  }

  /** Stops accepting (listeners closed first so the relay routes to other instances), drains bounded. */
  async shutdown(drainMs: number): Promise<void> {
    this.stopping = true;
    await this.queue.catch(() => {});
    await this.closeListeners();
    this.ctx.standby?.closeAll("module shutting down");
    const all = [...this.mappings.values(), ...this.draining];
    await Promise.all(all.map((m) => m.drain("drain", drainMs, "module shutting down")));
    await Promise.race([Promise.all(this.background), new Promise((r) => setTimeout(r, 1_000).unref())]);
  }

  /** Standby connections held right now. */
  get standbyHeld(): number {
    return this.ctx.standby?.count ?? 0;
  }

  /** Settles once queued applies are done (tests, benchmarks). */
  idle(): Promise<void> {
    return this.queue;
  }

  state(): RunningState {
    const mappings: Record<string, ReportedMapping> = {};
    for (const runtime of this.draining) mappings[runtime.name] = runtime.report();
    for (const [name, runtime] of this.mappings) mappings[name] = runtime.report();
    const refusals: TwinError[] = [];
    for (const [name, runtime] of this.mappings) {
      if (runtime.state === "refused") {
        refusals.push({
          path: `mappings.${name}.target`,
          message: `refused locally: ${runtime.refusal ?? ""}`.slice(0, 160),
        });
      }
    }
    return {
      appliedDesiredVersion: this.appliedDesiredVersion,
      relay: this.relayState(),
      mappings,
      errors: [...this.validationErrors, ...refusals].slice(0, MAX_REPORTED_ERRORS),
    };
  }

  private relayState(): ReportedRelay {
    const relay = this.config.relay;
    const listeners: ReportedListener[] = this.listeners.map((l, i) => ({
      id: String(i),
      status: l.state.status,
      since: iso(l.state.since),
      lastError: l.state.lastError ? l.state.lastError.slice(0, 160) : null,
      nextAttemptAt: l.state.nextAttemptAt ? iso(l.state.nextAttemptAt) : null,
    }));
    const statuses = new Set(listeners.map((l) => l.status));
    let status: ReportedRelay["status"] = "offline";
    if (!relay) status = "unconfigured";
    else if (statuses.has("online")) status = "online";
    else if (statuses.has("reconnecting")) status = "reconnecting";
    else if (statuses.has("connecting")) status = "connecting";
    return {
      status,
      endpoint: relay?.endpoint ?? null,
      hybridConnection: relay?.hybridConnection ?? null,
      keyName: relay?.sasKeyName ?? null,
      keyFingerprint: relay ? keyFingerprint(relay.sasKey) : null,
      listeners,
    };
  }

  /** Current config of a mapping (direct method `testTarget`). */
  mappingConfig(name: string): MappingConfig | undefined {
    return this.mappings.get(name)?.config;
  }
}

function describeChange(c: ConfigChange): string {
  return "name" in c ? `${c.kind}:${c.name}` : c.kind;
}
