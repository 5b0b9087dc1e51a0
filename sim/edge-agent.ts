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
import { errorMessage } from "../lib/errors.ts";
import { EDGE_AGENT_MODULE_ID } from "../lib/fleet-deployment.ts";
import { type NodeProcessSpec, type RunningProcess, startNodeProcess } from "./child-process.ts";
import { AgentReporter } from "./edge-agent-reporter.ts";
import {
  byStartupOrder,
  type EdgeAgentOptions,
  exitedState,
  fingerprintOf,
  type ModuleRuntimeState,
  newRunningModule,
  now,
  type RunningModule,
  readAgentDesired,
  restartWanted,
  runningState,
  startFailedState,
} from "./edge-agent-state.ts";
import { Supervisor } from "./supervisor.ts";
import { withTimeout } from "./with-timeout.ts";

// CommonJS packages: Node's ESM loader cannot see their named exports, so take the namespace.
const { ModuleClient: ModuleClientCtor } = deviceSdk;
const { Mqtt } = mqttTransport;

export { EDGE_AGENT_MODULE_ID };

export class EdgeAgent {
  readonly deviceId: string;
  private client: ModuleClient | undefined;
  private twin: Twin | undefined;
  private readonly modules = new Map<string, RunningModule>();
  private readonly supervisor: Supervisor;
  private readonly ownSupervisor: boolean;
  private stopped = false;
  private reconciling: Promise<void> = Promise.resolve();
  private pendingDesired: unknown;
  private resyncTimer: NodeJS.Timeout | undefined;
  private readonly startedAt = now();
  private readonly reporter = new AgentReporter({
    startedAt: this.startedAt,
    twin: () => this.twin,
    modules: () => this.modules,
    stopped: () => this.stopped,
    log: (line) => this.log(line),
  });
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
    const read = readAgentDesired(desiredIn);
    if (read.version !== undefined) this.reporter.lastDesiredVersion = read.version;
    if (!read.wanted) {
      this.reporter.lastDesiredStatus = { code: 400, description: read.problems.join("; ") };
      this.reporter.schedule();
      return;
    }
    const { wanted, problems } = read;
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
    for (const [moduleId, next] of byStartupOrder(wanted)) {
      if (this.stopped) return;
      if (next.status === "stopped") {
        if (!this.modules.has(moduleId))
          this.modules.set(
            moduleId,
            newRunningModule(moduleId, next, "stopped", this.opts.resolveImage(next.settings.image)),
          );
        continue;
      }
      let mod = this.modules.get(moduleId);
      if (!mod) {
        mod = newRunningModule(moduleId, next, "unknown", this.opts.resolveImage(next.settings.image));
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
    this.reporter.lastDesiredStatus =
      problems.length === 0
        ? { code: 200, description: "" }
        : { code: 400, description: problems.join("; ") };
    this.reporter.schedule();
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
      mod.state = startFailedState(mod.state, errorMessage(err));
      this.reporter.schedule();
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
    mod.state = runningState(mod.state, restart);
    this.log(`${part} started (pid ${proc.child.pid})`);
    this.opts.onModuleEvent?.({ type: "started", moduleId: mod.moduleId, replica, process: proc });
    this.reporter.schedule();
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
    mod.state = exitedState(mod.state, code, {
      asked,
      restarts,
      anyRunning: mod.replicas.some((x) => x.process),
    });
    if (!asked) this.log(`${this.partName(mod.moduleId, replica)} exited (${code})`);
    this.reporter.schedule();
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

  /** `$edgeAgent`'s reported properties, the shape IoT Edge reports. */
  reportedProperties(): Record<string, unknown> {
    return this.reporter.properties();
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
    this.reporter.stop();
    if (this.ownSupervisor) this.supervisor.stop();
    await this.reconciling.catch(() => undefined);
    if (opts.stopModules !== false)
      await Promise.all([...this.modules.values()].map((m) => this.stopModule(m)));
    this.resolveFirst();
    await this.client?.close().catch(() => undefined);
  }
}
