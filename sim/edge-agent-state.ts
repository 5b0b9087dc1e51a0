/**
 * What the simulated edge agent (sim/edge-agent.ts) acts on and keeps: the parts of `$edgeAgent`'s
 * desired properties it reads, each module's runtime state as IoT Edge reports it and how that
 * state changes (plain functions, tested on their own), and the agent's options.
 */
import { z } from "zod";
import type { NodeProcessSpec, RunningProcess } from "./child-process.ts";
import type { ModuleImage } from "./module-images.ts";
import type { Supervisor } from "./supervisor.ts";

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

export const AgentDesired = z.object({
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

export interface Replica {
  process: RunningProcess | undefined;
  /** A start in flight (initial, by hand or by the supervisor). */
  starting: Promise<void> | undefined;
  /** Started once: from then on only the restart policy (the supervisor) or a restart by hand starts it. */
  attempted?: boolean;
}

export interface RunningModule {
  moduleId: string;
  desired: DesiredModule;
  /** Fingerprint of what makes a new process necessary (image, env, createOptions, version). */
  fingerprint: string;
  image: ModuleImage | undefined;
  replicas: Replica[];
  state: ModuleRuntimeState;
}

export const NEVER = "0001-01-01T00:00:00Z";
export const now = () => new Date().toISOString();

export function fingerprintOf(m: DesiredModule): string {
  return JSON.stringify([m.settings.image, m.settings.createOptions ?? null, m.env ?? {}, m.version ?? ""]);
}

/** IoT Edge: `on-failure` / `on-unhealthy` restart a module that crashed; `always` after any exit. */
export function restartWanted(policy: DesiredModule["restartPolicy"], exit: number | string): boolean {
  if (policy === "always") return true;
  if (policy === "never") return false;
  return exit !== 0;
}

type DesiredRead =
  | { version?: number; wanted: Map<string, DesiredModule>; problems: string[] }
  | { version?: number; wanted?: undefined; problems: string[] };

/**
 * `$edgeAgent`'s desired properties: the modules that parse (a module that does not is a problem
 * reported in `lastDesiredStatus`, the others still run), or none when the document itself is bad.
 */
export function readAgentDesired(desiredIn: unknown): DesiredRead {
  const parsed = AgentDesired.safeParse(desiredIn);
  if (!parsed.success) return { problems: [`$edgeAgent desired properties: ${parsed.error.message}`] };
  const desired = parsed.data;
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
  return { ...(desired.$version !== undefined ? { version: desired.$version } : {}), wanted, problems };
}

/** The modules in IoT Edge's start order: by `startupOrder`, those without one last. */
export function byStartupOrder(wanted: Map<string, DesiredModule>): Array<[string, DesiredModule]> {
  return [...wanted.entries()].sort(
    ([, a], [, b]) =>
      (a.startupOrder ?? Number.MAX_SAFE_INTEGER) - (b.startupOrder ?? Number.MAX_SAFE_INTEGER),
  );
}

export function newRunningModule(
  moduleId: string,
  desired: DesiredModule,
  status: RuntimeStatus,
  image: ModuleImage | undefined,
): RunningModule {
  return {
    moduleId,
    desired,
    fingerprint: fingerprintOf(desired),
    image,
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

/** A module's state after one of its processes exited (asked to, or on its own). */
export function exitedState(
  state: ModuleRuntimeState,
  code: number | string,
  how: { asked: boolean; restarts: boolean; anyRunning: boolean },
): ModuleRuntimeState {
  return {
    ...state,
    exitCode: typeof code === "number" ? code : 137,
    lastExitTimeUtc: now(),
    ...(how.anyRunning
      ? {}
      : {
          runtimeStatus: how.asked ? "stopped" : how.restarts ? "backoff" : "failed",
          statusDescription: how.asked ? "stopped" : `exited (${code})`,
        }),
  };
}

/** A process that could not be started: backoff until the supervisor's next attempt. */
export function startFailedState(state: ModuleRuntimeState, error: string): ModuleRuntimeState {
  const firstLine = error.split("\n")[0] ?? "";
  return {
    ...state,
    runtimeStatus: "backoff",
    statusDescription: `failed to start: ${firstLine}`,
    lastExitTimeUtc: now(),
  };
}

/** A process that started (a restart counts as one). */
export function runningState(state: ModuleRuntimeState, restart: boolean): ModuleRuntimeState {
  const at = now();
  return {
    ...state,
    runtimeStatus: "running",
    statusDescription: "running",
    lastStartTimeUtc: at,
    ...(restart ? { restartCount: state.restartCount + 1, lastRestartTimeUtc: at } : {}),
  };
}
