/**
 * Keeps the simulation's parts running the way IoT Edge's `restartPolicy: always` and a service
 * manager do: a part that exits without being asked to is started again (same port, same state,
 * by the restart function its owner gives), after a delay that doubles with each crash in a row
 * and starts over once the part has stayed up for a while. Every crash and restart is an event,
 * and the current state of each part can be read for the live view. Written here, not taken from a
 * process manager, because the edge agents restart modules through it by their deployment's
 * restart policy (sim/edge-agent.ts), and restarting means calling the owner's start function
 * (same ports, same state), not re-running a command line.
 */
import { backoffDelay } from "../lib/backoff.ts";

/** Something that runs and ends: a child process handle, Azurite. */
export interface Watchable {
  /** Settles with the exit code or signal name when it ends. */
  exited: Promise<number | string>;
  /** True when the exit was asked for (stop, close): not a crash. */
  intended(): boolean;
  pid?: number | undefined;
}

export type PartEvent =
  | { type: "crashed"; part: string; code: number | string; restarts: number; restartInMs: number }
  | { type: "restarted"; part: string; restarts: number; pid: number | undefined }
  | { type: "restart-failed"; part: string; restarts: number; error: string; restartInMs: number };

export interface PartState {
  part: string;
  state: "up" | "restarting" | "stopped";
  pid: number | undefined;
  /** Restarts after a crash since the simulation started. */
  restarts: number;
  lastCrash?: { code: number | string; at: string };
}

export interface SupervisorOptions {
  /** Restart crashed parts (npm start); off, a crash is only recorded (tests restart by hand). */
  restart: boolean;
  onEvent?: (event: PartEvent) => void;
  /** First restart delay; doubles per crash in a row up to `maxDelayMs`. */
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** A part up this long has its crash streak forgotten. */
  stableAfterMs?: number;
}

interface Entry {
  state: PartState;
  /** Crashes in a row (reset once the part stayed up for `stableAfterMs`). */
  streak: number;
  startedAt: number;
  /** Changes with each new process, so a stale exit cannot act on a newer one. */
  generation: number;
  timer?: NodeJS.Timeout;
}

export class Supervisor {
  private readonly parts = new Map<string, Entry>();
  private stopping = false;
  private crashCount = 0;

  constructor(private readonly options: SupervisorOptions) {}

  /** The parts in the order they were first started. */
  states(): PartState[] {
    return [...this.parts.values()].map((e) => ({ ...e.state }));
  }

  /** Crashes seen in this run, over every part. */
  crashes(): number {
    return this.crashCount;
  }

  /**
   * Watches `running` as `part`. On an unintended exit, `restart` is called (after the delay) and
   * must start the part again and watch the new process itself (by calling `watch` again).
   */
  watch(part: string, running: Watchable, restart: () => Promise<unknown>): void {
    const entry = this.parts.get(part) ?? {
      state: { part, state: "up", pid: undefined, restarts: 0 },
      streak: 0,
      startedAt: 0,
      generation: 0,
    };
    this.parts.set(part, entry);
    clearTimeout(entry.timer);
    entry.generation += 1;
    const generation = entry.generation;
    entry.state.state = "up";
    entry.state.pid = running.pid;
    entry.startedAt = Date.now();
    void running.exited.then((code) => {
      if (entry.generation !== generation) return;
      if (this.stopping || running.intended()) {
        entry.state.state = "stopped";
        return;
      }
      if (Date.now() - entry.startedAt >= (this.options.stableAfterMs ?? 60_000)) entry.streak = 0;
      entry.state.lastCrash = { code, at: new Date().toISOString() };
      this.crashCount += 1;
      if (!this.options.restart) {
        entry.state.state = "stopped";
        this.options.onEvent?.({
          type: "crashed",
          part,
          code,
          restarts: entry.state.restarts,
          restartInMs: -1,
        });
        return;
      }
      const delay = this.delay(entry);
      entry.state.state = "restarting";
      this.options.onEvent?.({
        type: "crashed",
        part,
        code,
        restarts: entry.state.restarts,
        restartInMs: delay,
      });
      this.schedule(part, entry, generation, restart, delay);
    });
  }

  /** Stops restarting: everything that exits from now on was asked to. */
  stop(): void {
    this.stopping = true;
    for (const e of this.parts.values()) clearTimeout(e.timer);
  }

  /** Forgets a part that was removed on purpose (a site taken out). */
  forget(part: string): void {
    const e = this.parts.get(part);
    if (e) clearTimeout(e.timer);
    this.parts.delete(part);
  }

  private delay(entry: Entry): number {
    // The project's backoff without jitter: one machine's own processes, nothing to spread.
    const policy = {
      initialMs: this.options.initialDelayMs ?? 500,
      maxMs: this.options.maxDelayMs ?? 30_000,
    };
    return backoffDelay({ ...policy, jitter: 0 }, entry.streak++);
  }

  private schedule(
    part: string,
    entry: Entry,
    generation: number,
    restart: () => Promise<unknown>,
    delay: number,
  ): void {
    entry.timer = setTimeout(() => {
      if (this.stopping || entry.generation !== generation) return;
      entry.state.restarts += 1;
      restart().then(
        () => {
          if (this.stopping) return;
          this.options.onEvent?.({
            type: "restarted",
            part,
            restarts: entry.state.restarts,
            pid: entry.state.pid,
          });
        },
        (err: unknown) => {
          if (this.stopping || entry.generation !== generation) return;
          const next = this.delay(entry);
          this.options.onEvent?.({
            type: "restart-failed",
            part,
            restarts: entry.state.restarts,
            error: err instanceof Error ? (err.message.split("\n")[0] ?? "") : String(err),
            restartInMs: next,
          });
          this.schedule(part, entry, generation, restart, next);
        },
      );
    }, delay);
    entry.timer.unref();
  }
}

/** One line of progress output for a part's crash, restart or failed restart. */
export function describePartEvent(event: PartEvent): string {
  if (event.type === "crashed")
    return `${event.part} exited (${event.code})${event.restartInMs >= 0 ? `: restarting in ${event.restartInMs} ms` : ""}`;
  if (event.type === "restarted") return `${event.part} restarted (restart #${event.restarts})`;
  return `${event.part} failed to restart: ${event.error}`;
}
