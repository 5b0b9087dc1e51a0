/**
 * Fault injection for the tests of the parts that use the relay: drop a listener's control channel,
 * refuse or delay the next rendezvous, cut relayed connections mid-stream, and an outage (new TCP
 * connections reset, or the port closed, for a while). Reachable in-process (`emulator.faults`) and
 * over `POST /$admin/faults` with the same names.
 */
import { z } from "zod";
import { isSendableCloseCode } from "./close-control.ts";
import type { EmulatorContext } from "./context.ts";

const hcField = z.string().min(1).max(260).optional();
const closeCode = z.number().int().refine(isSendableCloseCode, "not a close code a frame can carry");

/** Body of `POST /$admin/faults`: one action per request. */
export const faultRequestSchema = z.discriminatedUnion("action", [
  z.object({
    action: z.literal("dropListener"),
    hybridConnection: z.string().min(1).max(260),
    code: closeCode.default(1011),
    reason: z.string().max(120).default("fault injected: listener dropped"),
    /** How many listeners to drop (default 1); `all: true` drops every one. */
    count: z.number().int().min(1).default(1),
    all: z.boolean().default(false),
  }),
  z.object({
    action: z.literal("refuseRendezvous"),
    hybridConnection: hcField,
    status: z.number().int().min(400).max(599).default(503),
    description: z.string().max(200).default("fault injected: rendezvous refused"),
    count: z.number().int().min(1).default(1),
  }),
  z.object({
    action: z.literal("delayRendezvous"),
    hybridConnection: hcField,
    ms: z.number().int().min(0).max(600_000),
    count: z.number().int().min(1).default(1),
  }),
  z.object({
    action: z.literal("cutConnections"),
    hybridConnection: hcField,
    /** A close code sent to both legs, or "terminate" to drop the TCP connections without one. */
    code: z.union([closeCode, z.literal("terminate")]).default(1011),
  }),
  z.object({
    action: z.literal("outage"),
    ms: z.number().int().min(1).max(3_600_000),
    /** reset: accept and drop new TCP connections (counted); refuse: close the port (ECONNREFUSED). */
    mode: z.enum(["reset", "refuse"]).default("reset"),
    /** Also drop every control channel and relayed connection now (a real outage does). */
    dropExisting: z.boolean().default(true),
  }),
  z.object({ action: z.literal("clear") }),
]);

export type FaultRequest = z.input<typeof faultRequestSchema>;

/** The fault API, in-process. Each method returns how many things it affected. */
export interface RelayFaults {
  dropListener(
    hybridConnection: string,
    opts?: { code?: number; reason?: string; count?: number; all?: boolean },
  ): number;
  refuseRendezvous(opts?: {
    hybridConnection?: string;
    status?: number;
    description?: string;
    count?: number;
  }): number;
  delayRendezvous(ms: number, opts?: { hybridConnection?: string; count?: number }): number;
  cutConnections(opts?: { hybridConnection?: string; code?: number | "terminate" }): number;
  outage(ms: number, opts?: { mode?: "reset" | "refuse"; dropExisting?: boolean }): Promise<number>;
  clear(): number;
  /** Applies one `POST /$admin/faults` body (validated). */
  apply(request: unknown): Promise<{ action: string; affected: number }>;
}

export function createFaults(
  ctx: EmulatorContext,
  portControl: { closePort(): Promise<void>; reopenPort(): Promise<void> },
): RelayFaults & { dispose(): void } {
  const state = ctx.faults;
  let reopenTimer: NodeJS.Timeout | undefined;

  const faults: RelayFaults & { dispose(): void } = {
    /** Stops the reopen timer of a "refuse" outage (the emulator is closing). */
    dispose() {
      if (reopenTimer) clearTimeout(reopenTimer);
      reopenTimer = undefined;
    },
    dropListener(hybridConnection, opts = {}) {
      const hc = ctx.namespace.get(hybridConnection);
      if (!hc) return 0;
      const victims = [...hc.listeners].slice(0, opts.all ? undefined : (opts.count ?? 1));
      for (const l of victims) l.close(opts.code ?? 1011, opts.reason ?? "fault injected: listener dropped");
      return victims.length;
    },
    refuseRendezvous(opts = {}) {
      state.refusals.push({
        hybridConnection: opts.hybridConnection,
        status: opts.status ?? 503,
        description: opts.description ?? "fault injected: rendezvous refused",
        remaining: opts.count ?? 1,
      });
      return 1;
    },
    delayRendezvous(ms, opts = {}) {
      state.delays.push({ hybridConnection: opts.hybridConnection, ms, remaining: opts.count ?? 1 });
      return 1;
    },
    cutConnections(opts = {}) {
      let n = 0;
      for (const pair of [...ctx.pairs]) {
        if (
          opts.hybridConnection &&
          pair.hybridConnection.toLowerCase() !== opts.hybridConnection.toLowerCase()
        )
          continue;
        pair.cut(opts.code ?? 1011, "fault injected: connection cut");
        n++;
      }
      return n;
    },
    async outage(ms, opts = {}) {
      let n = 0;
      state.outageUntil = Date.now() + ms;
      state.outageMode = opts.mode ?? "reset";
      if (opts.dropExisting ?? true) {
        for (const cc of [...ctx.controlChannels]) {
          cc.terminate();
          n++;
        }
        for (const pair of [...ctx.pairs]) {
          pair.cut("terminate");
          n++;
        }
      }
      if (state.outageMode === "refuse") {
        await portControl.closePort();
        if (reopenTimer) clearTimeout(reopenTimer);
        reopenTimer = setTimeout(() => {
          void portControl
            .reopenPort()
            .catch((err: unknown) => ctx.logger.error({ err }, "could not reopen port after outage"));
        }, ms);
        reopenTimer.unref();
      }
      return n;
    },
    clear() {
      const n = state.refusals.length + state.delays.length + (state.outageActive() ? 1 : 0);
      state.refusals = [];
      state.delays = [];
      state.outageUntil = 0;
      if (reopenTimer) {
        clearTimeout(reopenTimer);
        reopenTimer = undefined;
        void portControl.reopenPort().catch(() => undefined);
      }
      return n;
    },
    async apply(request) {
      const r = faultRequestSchema.parse(request);
      switch (r.action) {
        case "dropListener":
          return { action: r.action, affected: faults.dropListener(r.hybridConnection, r) };
        case "refuseRendezvous":
          return { action: r.action, affected: faults.refuseRendezvous(stripUndefined(r)) };
        case "delayRendezvous":
          return { action: r.action, affected: faults.delayRendezvous(r.ms, stripUndefined(r)) };
        case "cutConnections":
          return { action: r.action, affected: faults.cutConnections(stripUndefined(r)) };
        case "outage":
          return { action: r.action, affected: await faults.outage(r.ms, r) };
        case "clear":
          return { action: r.action, affected: faults.clear() };
      }
    },
  };
  return faults;
}

function stripUndefined<T extends object>(o: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as {
    [K in keyof T]: Exclude<T[K], undefined>;
  };
}
