/**
 * `$edgeAgent`'s reported properties for the simulated edge agent (sim/edge-agent.ts): what IoT
 * Edge reports (`lastDesiredVersion`, `lastDesiredStatus`, `systemModules`, each module's runtime
 * state), sent as one patch per burst of changes and only when something changed.
 */
import type { Twin } from "azure-iot-device";
import { errorMessage } from "../lib/errors.ts";
import { NEVER, type RunningModule } from "./edge-agent-state.ts";
import { withTimeout } from "./with-timeout.ts";

/** What the reporter reads from its agent. */
export interface ReportSource {
  readonly startedAt: string;
  twin(): Twin | undefined;
  modules(): ReadonlyMap<string, RunningModule>;
  stopped(): boolean;
  log(line: string): void;
}

export class AgentReporter {
  lastDesiredVersion = 0;
  lastDesiredStatus = { code: 200, description: "" };
  /** Modules the hub was last told about: one that is gone is reported as null. */
  private reportedIds = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private reporting: Promise<void> = Promise.resolve();
  private lastJson = "";

  constructor(private readonly source: ReportSource) {}

  /** Reports soon: changes within 100 ms go out as one patch. */
  schedule(): void {
    if (this.source.stopped() || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.reporting = this.reporting.then(() => this.report()).catch(() => undefined);
    }, 100);
    this.timer.unref();
  }

  /** `$edgeAgent`'s reported properties, the shape IoT Edge reports. */
  properties(): Record<string, unknown> {
    const modules: Record<string, unknown> = {};
    for (const [moduleId, mod] of this.source.modules()) {
      modules[moduleId] = {
        ...mod.state,
        status: mod.desired.status,
        restartPolicy: mod.desired.restartPolicy,
        version: mod.desired.version ?? "1.0",
        type: mod.desired.type ?? "docker",
        settings: { image: mod.desired.settings.image },
      };
    }
    for (const id of this.reportedIds) if (!this.source.modules().has(id)) modules[id] = null;
    const running = (description: string) => ({
      runtimeStatus: "running",
      statusDescription: description,
      exitCode: 0,
      lastStartTimeUtc: this.source.startedAt,
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
    const twin = this.source.twin();
    if (!twin || this.source.stopped()) return;
    const patch = this.properties();
    // The resync pass reconciles every few seconds; IoT Hub only hears about a change.
    const json = JSON.stringify(patch);
    if (json === this.lastJson) return;
    await withTimeout(
      new Promise<void>((resolve, reject) =>
        twin.properties.reported.update(patch, (err?: Error) => (err ? reject(err) : resolve())),
      ),
      10_000,
      "reporting $edgeAgent's properties",
    ).then(
      () => {
        this.reportedIds = new Set(this.source.modules().keys());
        this.lastJson = json;
      },
      (err: unknown) => {
        this.source.log(`reporting failed: ${errorMessage(err)}`);
        this.schedule();
      },
    );
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}
