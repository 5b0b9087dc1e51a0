/**
 * The edge-agent stand-in of one simulated IoT Edge device. It connects to IoT Hub as the device's
 * `$edgeAgent` module (the unmodified azure-iot-device SDK over MQTT, like the real edgeAgent),
 * reads `$edgeAgent`'s desired properties — what IoT Hub's at-scale deployments put there — and
 * runs what they say: each module in `modules` becomes a process of the module's source
 * (sim/module-images.ts), with the deployment's `env`, started in `startupOrder`, stopped when the
 * deployment drops it or sets `status: stopped`, restarted after an exit as its `restartPolicy`
 * says. It writes `$edgeAgent`'s reported properties as IoT Edge does (`lastDesiredVersion`,
 * `lastDesiredStatus`, `systemModules`, and per module `runtimeStatus`, `exitCode`,
 * `lastStartTimeUtc`, `lastExitTimeUtc`, `restartCount`, …).
 *
 * What differs from IoT Edge: no containers (a module is a Node process on this host, so the
 * simulation's host settings — ports, files — are laid over the deployment's `env`, as a
 * container's own network and mounts would keep them apart); no edgeHub (modules talk to the
 * IoT Hub emulator directly, given the simulator convention `EdgeHubConnectionString` +
 * `EdgeModuleCACertificateFile` that iotedgehubdev uses); restart delays are the simulation's
 * supervisor's (sim/supervisor.ts), not edgeAgent's cool-off.
 */
import deviceSdk, { type ModuleClient, type Twin } from "azure-iot-device";
import mqttTransport from "azure-iot-device-mqtt";
import { z } from "zod";
import { errorMessage } from "../lib/errors.ts";
import { EDGE_AGENT_MODULE_ID } from "../lib/fleet-deployment.ts";
import { type NodeProcessSpec, type RunningProcess, startNodeProcess } from "./child-process.ts";
import type { ModuleImage } from "./module-images.ts";
import { Supervisor } from "./supervisor.ts";

// CommonJS packages: Node's ESM loader cannot see their named exports, so take the namespace.
const { ModuleClient: ModuleClientCtor } = deviceSdk;
const { Mqtt } = mqttTransport;

export { EDGE_AGENT_MODULE_ID };

const EnvValue = z.object({ value: z.union([z.string(), z.number(), z.boolean()]) });

/** One entry of `$edgeAgent` desired `modules` (the parts the simulation acts on). */
export const DesiredModule = z.object({
  version: z.string().optional(),
  type: z.string().optional(),
  status: z.enum(["running", "stopped"]).default("running"),
  restartPolicy: z.enum(["never", "on-failure", "on-unhealthy", "always"]).default("always"),
  startupOrder: z.number().int().nonnegative().optional(),
  env: z.record(z.string(), EnvValue).optional(),
  settings: z.object({ image: z.string().min(1), createOptions: z.unknown().optional() }),
});
export type DesiredModule = z.infer<typeof DesiredModule>;

const AgentDesired = z.object({
  $version: z.number().int().optional(),
  modules: z.record(z.string(), z.unknown()).default({}),
});

export type RuntimeStatus = "running" | "backoff" | "stopped" | "failed" | "unknown";

/** A module's state as `$edgeAgent` reports it. */
export interface ModuleRuntimeState {
  runtimeStatus: RuntimeStatus;
  statusDescription: string;
  exitCode: number;
  lastStartTimeUtc: string;
  lastExitTimeUtc: string;
  restartCount: number;
  lastRestartTimeUtc: string;
}

export type AgentModuleEvent =
  | { type: "started"; moduleId: string; replica: number; process: RunningProcess }
  | { type: "stopped"; moduleId: string; replica: number };

export interface EdgeAgentOptions {
  deviceId: string;
  /** `$edgeAgent`'s connection string (with `GatewayHostName=host:port` for the MQTT port). */
  connectionString: string;
  /** The hub's CA certificate (PEM). */
  ca: string;
  /** Image of a deployment → the module source that stands for it (undefined: not in this repo). */
  resolveImage(image: string): ModuleImage | undefined;
  /**
   * What the runtime gives module `moduleId` besides the deployment's `env`: its identity (the
   * simulator convention) and the host settings of the simulation. Laid over the deployment's env.
   */
  runtimeEnvironment(moduleId: string): Promise<NodeJS.ProcessEnv>;
  /** Process name and log file of a module's process (default `<deviceId>-<moduleId>`). */
  partName?(moduleId: string, replica: number): string;
  logFile?(part: string): string | undefined;
  /** Starts a process (the fleet's own spawn, so it tracks every process); default startNodeProcess. */
  spawn?(spec: NodeProcessSpec): Promise<RunningProcess>;
  /**
   * Restarts exited modules (shared with the simulation's other parts, so crashes are counted and
   * announced alike). Default: an own supervisor that restarts after 500 ms, doubling.
   */
  supervisor?: Supervisor;
  onModuleEvent?(event: AgentModuleEvent): void;
  /** Progress lines (a module started, stopped, failed). */
  onLog?(line: string): void;
  /** How often the whole twin is read again (a patch missed across a hub restart); default 5 s. */
  resyncMs?: number;
}

interface Replica {
  process: RunningProcess | undefined;
  /** A start in flight (initial, by hand or by the supervisor). */
  starting: Promise<void> | undefined;
  /** Started once: from then on only the restart policy (the supervisor) or a restart by hand starts it. */
  attempted?: boolean;
}

interface RunningModule {
  moduleId: string;
  desired: DesiredModule;
  /** Fingerprint of what makes a new process necessary (image, env, createOptions, version). */
  fingerprint: string;
  image: ModuleImage | undefined;
  replicas: Replica[];
  state: ModuleRuntimeState;
}

const NEVER = "0001-01-01T00:00:00Z";
const now = () => new Date().toISOString();

function fingerprintOf(m: DesiredModule): string {
  return JSON.stringify([m.settings.image, m.settings.createOptions ?? null, m.env ?? {}, m.version ?? ""]);
}

/** IoT Edge: `on-failure` / `on-unhealthy` restart a module that crashed; `always` after any exit. */
export function restartWanted(policy: DesiredModule["restartPolicy"], exit: number | string): boolean {
  if (policy === "always") return true;
  if (policy === "never") return false;
  return exit !== 0;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms);
    timer.unref();
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

export class EdgeAgent {
  readonly deviceId: string;
  private client: ModuleClient | undefined;
  private twin: Twin | undefined;
  private readonly modules = new Map<string, RunningModule>();
  /** Module ids last reported (a removed one is reported as null once). */
  private reportedIds = new Set<string>();
  private readonly supervisor: Supervisor;
  private readonly ownSupervisor: boolean;
  private stopped = false;
  private reconciling: Promise<void> = Promise.resolve();
  private pendingDesired: unknown;
  private lastDesiredVersion = 0;
  private lastDesiredStatus = { code: 200, description: "" };
  private reportTimer: NodeJS.Timeout | undefined;
  private reporting: Promise<void> = Promise.resolve();
  private lastReportJson = "";
  private resyncTimer: NodeJS.Timeout | undefined;
  private readonly startedAt = now();
  /** Settles once the first desired properties have been acted on. */
  readonly firstReconcile: Promise<void>;
  private resolveFirst!: () => void;

  constructor(private readonly opts: EdgeAgentOptions) {
    this.deviceId = opts.deviceId;
    this.ownSupervisor = opts.supervisor === undefined;
    this.supervisor = opts.supervisor ?? new Supervisor({ restart: true });
    this.firstReconcile = new Promise((r) => {
      this.resolveFirst = r;
    });
  }

  /** Connects as `$edgeAgent`, reads the desired properties and starts acting on them. */
  async start(): Promise<void> {
    await this.connect();
    const tick = () => {
      this.resyncTimer = setTimeout(() => {
        void this.resync().finally(() => {
          if (!this.stopped) tick();
        });
      }, this.opts.resyncMs ?? 5_000);
      this.resyncTimer.unref();
    };
    tick();
  }

  private async connect(): Promise<void> {
    const client = ModuleClientCtor.fromConnectionString(this.opts.connectionString, Mqtt);
    // The SDK reconnects by itself after a dropped connection; an error it gives up on is logged,
    // and the resync timer opens a new client.
    client.on("error", (err: Error) => this.log(`connection error: ${errorMessage(err)}`));
    await client.setOptions({ ca: this.opts.ca });
    await withTimeout(client.open(), 30_000, "opening the $edgeAgent connection");
    if (this.stopped) {
      await client.close().catch(() => undefined);
      return;
    }
    const twin = await withTimeout(client.getTwin(), 30_000, "reading $edgeAgent's twin");
    this.client = client;
    this.twin = twin;
    twin.on("properties.desired", () => this.desiredChanged(twin.properties.desired));
  }

  /** Reads the whole twin again; a client that does not answer is replaced by a new one. */
  private async resync(): Promise<void> {
    if (this.stopped) return;
    try {
      const twin = this.twin;
      if (!twin) throw new Error("no twin");
      await withTimeout(
        new Promise<void>((resolve, reject) => twin.get((err) => (err ? reject(err) : resolve()))),
        10_000,
        "reading $edgeAgent's twin",
      );
      this.desiredChanged(twin.properties.desired);
    } catch (err) {
      this.log(`re-reading the twin failed (${errorMessage(err)}): reconnecting`);
      const old = this.client;
      this.client = undefined;
      this.twin = undefined;
      await old?.close().catch(() => undefined);
      await this.connect().catch((e: unknown) => this.log(`reconnecting failed: ${errorMessage(e)}`));
    }
  }

  private desiredChanged(desired: unknown): void {
    if (this.stopped) return;
    // Patches in quick succession collapse into one pass over the latest desired properties.
    const first = this.pendingDesired === undefined;
    this.pendingDesired = structuredClone(desired);
    if (!first) return;
    this.reconciling = this.reconciling.then(async () => {
      const latest = this.pendingDesired;
      this.pendingDesired = undefined;
      await this.reconcile(latest).catch((err: unknown) =>
        this.log(`applying desired failed: ${errorMessage(err)}`),
      );
      this.resolveFirst();
    });
  }

  /** Makes the running modules what `desiredIn` says. */
  private async reconcile(desiredIn: unknown): Promise<void> {
    const parsed = AgentDesired.safeParse(desiredIn);
    if (!parsed.success) {
      this.lastDesiredStatus = {
        code: 400,
        description: `$edgeAgent desired properties: ${parsed.error.message}`,
      };
      this.scheduleReport();
      return;
    }
    const desired = parsed.data;
    if (desired.$version !== undefined) this.lastDesiredVersion = desired.$version;
    const problems: string[] = [];
    const wanted = new Map<string, DesiredModule>();
    for (const [moduleId, raw] of Object.entries(desired.modules)) {
      const m = DesiredModule.safeParse(raw);
      if (m.success) wanted.set(moduleId, m.data);
      else
        problems.push(
          `modules.${moduleId}: ${m.error.issues.map((i) => `${i.path.join(".")} ${i.message}`).join("; ")}`,
        );
    }
    // Gone from the deployment, stopped, or changed: the old process goes first.
    for (const [moduleId, mod] of this.modules) {
      const next = wanted.get(moduleId);
      if (!next) {
        await this.stopModule(mod);
        this.modules.delete(moduleId);
        this.log(`${moduleId} removed (no longer in the deployment)`);
      } else if (next.status === "stopped" || fingerprintOf(next) !== mod.fingerprint) {
        await this.stopModule(mod);
        if (next.status === "stopped") {
          mod.desired = next;
          mod.state = {
            ...mod.state,
            runtimeStatus: "stopped",
            statusDescription: "stopped by the deployment",
          };
        } else this.modules.delete(moduleId);
      } else mod.desired = next;
    }
    const order = [...wanted.entries()].sort(
      ([, a], [, b]) =>
        (a.startupOrder ?? Number.MAX_SAFE_INTEGER) - (b.startupOrder ?? Number.MAX_SAFE_INTEGER),
    );
    for (const [moduleId, next] of order) {
      if (this.stopped) return;
      if (next.status === "stopped") {
        if (!this.modules.has(moduleId))
          this.modules.set(moduleId, this.newModule(moduleId, next, "stopped"));
        continue;
      }
      let mod = this.modules.get(moduleId);
      if (!mod) {
        mod = this.newModule(moduleId, next, "unknown");
        this.modules.set(moduleId, mod);
      }
      if (!mod.image) {
        problems.push(`modules.${moduleId}: image ${next.settings.image} is not a module of this repository`);
        mod.state = {
          ...mod.state,
          runtimeStatus: "failed",
          statusDescription: `no source for image ${next.settings.image}`,
        };
        continue;
      }
      mod.replicas[0] ??= { process: undefined, starting: undefined };
      const r = mod.replicas[0];
      // Once started, an exited module is the restart policy's (a resync must not restart it).
      if (!r.process && !r.starting && !r.attempted) await this.startReplica(mod, 0);
    }
    this.lastDesiredStatus =
      problems.length === 0
        ? { code: 200, description: "" }
        : { code: 400, description: problems.join("; ") };
    this.scheduleReport();
  }

  private newModule(moduleId: string, desired: DesiredModule, status: RuntimeStatus): RunningModule {
    return {
      moduleId,
      desired,
      fingerprint: fingerprintOf(desired),
      image: this.opts.resolveImage(desired.settings.image),
      replicas: [],
      state: {
        runtimeStatus: status,
        statusDescription: status === "stopped" ? "stopped by the deployment" : "",
        exitCode: 0,
        lastStartTimeUtc: NEVER,
        lastExitTimeUtc: NEVER,
        restartCount: 0,
        lastRestartTimeUtc: NEVER,
      },
    };
  }

  private partName(moduleId: string, replica: number): string {
    return (
      this.opts.partName?.(moduleId, replica) ??
      `${this.deviceId}-${moduleId}${replica > 0 ? `-${replica + 1}` : ""}`
    );
  }

  /** Starts one process of a module; a failed start is reported and retried like a crash. */
  private startReplica(mod: RunningModule, replica: number, restart = false): Promise<void> {
    const r = mod.replicas[replica];
    if (!r) return Promise.resolve();
    if (r.starting) return r.starting;
    r.attempted = true;
    r.starting = this.spawnReplica(mod, replica, restart).finally(() => {
      r.starting = undefined;
    });
    return r.starting;
  }

  private async spawnReplica(mod: RunningModule, replica: number, restart: boolean): Promise<void> {
    const image = mod.image;
    if (!image || this.stopped || this.modules.get(mod.moduleId) !== mod) return;
    const part = this.partName(mod.moduleId, replica);
    const deploymentEnv = Object.fromEntries(
      Object.entries(mod.desired.env ?? {}).map(([k, v]) => [k, String(v.value)]),
    );
    const logFile = this.opts.logFile?.(part);
    const spec: NodeProcessSpec = {
      name: part,
      script: image.script,
      isReady: image.isReady,
      env: { ...deploymentEnv, ...(await this.opts.runtimeEnvironment(mod.moduleId)) },
      ...(logFile ? { logFile } : {}),
    };
    let proc: RunningProcess;
    try {
      proc = await (this.opts.spawn ?? startNodeProcess)(spec);
    } catch (err) {
      mod.state = {
        ...mod.state,
        runtimeStatus: "backoff",
        statusDescription: `failed to start: ${errorMessage(err).split("\n")[0] ?? ""}`,
        lastExitTimeUtc: now(),
      };
      this.scheduleReport();
      if (restart) throw err; // the supervisor schedules the next attempt
      this.watchFailedStart(mod, replica);
      return;
    }
    const r = mod.replicas[replica];
    // Removed or changed while it was starting: it does not stay.
    if (this.stopped || this.modules.get(mod.moduleId) !== mod || !r || mod.desired.status === "stopped") {
      await proc.stop("SIGTERM", 3_000);
      return;
    }
    r.process = proc;
    const at = now();
    mod.state = {
      ...mod.state,
      runtimeStatus: "running",
      statusDescription: "running",
      lastStartTimeUtc: at,
      ...(restart ? { restartCount: mod.state.restartCount + 1, lastRestartTimeUtc: at } : {}),
    };
    this.log(`${part} started (pid ${proc.child.pid})`);
    this.opts.onModuleEvent?.({ type: "started", moduleId: mod.moduleId, replica, process: proc });
    this.scheduleReport();
    void proc.exited.then((code) => this.exited(mod, replica, proc, code));
    this.supervisor.watch(
      part,
      {
        exited: proc.exited,
        // An exit the restart policy does not restart is not a crash to the supervisor either.
        intended: () =>
          proc.stopRequested ||
          this.stopped ||
          this.modules.get(mod.moduleId) !== mod ||
          !restartWanted(
            mod.desired.restartPolicy,
            proc.child.exitCode ?? proc.child.signalCode ?? "unknown",
          ),
        pid: proc.child.pid,
      },
      () => this.startReplica(mod, replica, true),
    );
  }

  /** A first start that failed: retried through the supervisor as a crash would be. */
  private watchFailedStart(mod: RunningModule, replica: number): void {
    if (mod.desired.restartPolicy === "never") {
      mod.state = { ...mod.state, runtimeStatus: "failed" };
      return;
    }
    this.supervisor.watch(
      this.partName(mod.moduleId, replica),
      { exited: Promise.resolve("start failed"), intended: () => this.stopped, pid: undefined },
      () => this.startReplica(mod, replica, true),
    );
  }

  private exited(mod: RunningModule, replica: number, proc: RunningProcess, code: number | string): void {
    const r = mod.replicas[replica];
    if (r?.process === proc) r.process = undefined;
    this.opts.onModuleEvent?.({ type: "stopped", moduleId: mod.moduleId, replica });
    if (this.modules.get(mod.moduleId) !== mod) return;
    const asked = proc.stopRequested;
    const restarts = !asked && restartWanted(mod.desired.restartPolicy, code);
    const anyRunning = mod.replicas.some((x) => x.process);
    mod.state = {
      ...mod.state,
      exitCode: typeof code === "number" ? code : 137,
      lastExitTimeUtc: now(),
      ...(anyRunning
        ? {}
        : {
            runtimeStatus: asked ? "stopped" : restarts ? "backoff" : "failed",
            statusDescription: asked ? "stopped" : `exited (${code})`,
          }),
    };
    if (!asked) this.log(`${this.partName(mod.moduleId, replica)} exited (${code})`);
    this.scheduleReport();
  }

  private async stopModule(mod: RunningModule): Promise<void> {
    await Promise.all(
      mod.replicas.map(async (r, i) => {
        await r.starting?.catch(() => undefined);
        this.supervisor.forget(this.partName(mod.moduleId, i));
        await r.process?.stop("SIGTERM", 3_000);
      }),
    );
    mod.replicas = [];
  }

  /**
   * Starts a module's process again now (like `iotedge restart <module>`): fault tests whose
   * supervisor does not restart use it after killing a module.
   */
  async restartModule(moduleId: string, replica = 0): Promise<RunningProcess> {
    const mod = this.modules.get(moduleId);
    if (!mod || mod.desired.status === "stopped")
      throw new Error(`${moduleId} is not deployed to ${this.deviceId}`);
    mod.replicas[replica] ??= { process: undefined, starting: undefined };
    const r = mod.replicas[replica];
    if (r?.process && r.process.child.exitCode === null && r.process.child.signalCode === null) {
      await r.process.stop("SIGTERM", 3_000);
    }
    await this.startReplica(mod, replica, true);
    const proc = mod.replicas[replica]?.process;
    if (!proc)
      throw new Error(`${moduleId} on ${this.deviceId} did not start: ${mod.state.statusDescription}`);
    return proc;
  }

  /** The running processes of a module (by replica). */
  processes(moduleId: string): Array<RunningProcess | undefined> {
    return this.modules.get(moduleId)?.replicas.map((r) => r.process) ?? [];
  }

  /** A module's state as last reported (undefined: not in the deployment). */
  moduleState(moduleId: string): ModuleRuntimeState | undefined {
    const s = this.modules.get(moduleId)?.state;
    return s ? { ...s } : undefined;
  }

  /** Resolves once `count` processes of `moduleId` run, or rejects after `timeoutMs`. */
  async waitRunning(moduleId: string, count = 1, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.processes(moduleId).filter(Boolean).length >= count) return;
      if (Date.now() > deadline) {
        const s = this.moduleState(moduleId);
        throw new Error(
          `${moduleId} is not running on ${this.deviceId} after ${timeoutMs} ms (${s ? `${s.runtimeStatus}: ${s.statusDescription}` : "not in its deployment"})`,
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  // ---- reported properties ---------------------------------------------------------------------

  private scheduleReport(): void {
    if (this.stopped || this.reportTimer) return;
    this.reportTimer = setTimeout(() => {
      this.reportTimer = undefined;
      this.reporting = this.reporting.then(() => this.report()).catch(() => undefined);
    }, 100);
    this.reportTimer.unref();
  }

  /** `$edgeAgent`'s reported properties, the shape IoT Edge reports. */
  reportedProperties(): Record<string, unknown> {
    const modules: Record<string, unknown> = {};
    for (const [moduleId, mod] of this.modules) {
      modules[moduleId] = {
        ...mod.state,
        status: mod.desired.status,
        restartPolicy: mod.desired.restartPolicy,
        version: mod.desired.version ?? "1.0",
        type: mod.desired.type ?? "docker",
        settings: { image: mod.desired.settings.image },
      };
    }
    for (const id of this.reportedIds) if (!this.modules.has(id)) modules[id] = null;
    const running = (description: string) => ({
      runtimeStatus: "running",
      statusDescription: description,
      exitCode: 0,
      lastStartTimeUtc: this.startedAt,
      lastExitTimeUtc: NEVER,
      restartCount: 0,
      lastRestartTimeUtc: NEVER,
      type: "docker",
    });
    return {
      schemaVersion: "1.1",
      version: { version: "simulated", build: "relay-fleet sim/edge-agent.ts", commit: "" },
      lastDesiredVersion: this.lastDesiredVersion,
      lastDesiredStatus: this.lastDesiredStatus,
      runtime: {
        type: "docker",
        platform: { os: process.platform, architecture: process.arch, version: process.version },
      },
      systemModules: {
        edgeAgent: running("the simulation's edge-agent stand-in"),
        edgeHub: running("the IoT Hub emulator stands in for edgeHub"),
      },
      modules,
    };
  }

  private async report(): Promise<void> {
    const twin = this.twin;
    if (!twin || this.stopped) return;
    const patch = this.reportedProperties();
    // The resync pass reconciles every few seconds; IoT Hub only hears about a change.
    const json = JSON.stringify(patch);
    if (json === this.lastReportJson) return;
    await withTimeout(
      new Promise<void>((resolve, reject) =>
        twin.properties.reported.update(patch, (err?: Error) => (err ? reject(err) : resolve())),
      ),
      10_000,
      "reporting $edgeAgent's properties",
    ).then(
      () => {
        this.reportedIds = new Set(this.modules.keys());
        this.lastReportJson = json;
      },
      (err: unknown) => {
        this.log(`reporting failed: ${errorMessage(err)}`);
        this.scheduleReport();
      },
    );
  }

  private log(line: string): void {
    this.opts.onLog?.(`${this.deviceId} edge agent: ${line}`);
  }

  /**
   * Stops the agent. `stopModules` (default) stops every module it runs, as switching the device
   * off would; the reported properties are left as they were.
   */
  async stop(opts: { stopModules?: boolean } = {}): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.resyncTimer);
    clearTimeout(this.reportTimer);
    if (this.ownSupervisor) this.supervisor.stop();
    await this.reconciling.catch(() => undefined);
    if (opts.stopModules !== false)
      await Promise.all([...this.modules.values()].map((m) => this.stopModule(m)));
    this.resolveFirst();
    await this.client?.close().catch(() => undefined);
  }
}
