/**
 * Azure Relay's namespace-wide connection quota (issue 18). Listener control channels, relayed
 * connections and senders waiting at a rendezvous each hold a connection; at the cap a new listen
 * or connect is refused with "QuotaExceeded", as Azure Relay refuses it, instead of the emulator
 * serving a fleet that production would turn away.
 */
import type { Duplex } from "node:stream";
import type { EmulatorContext } from "./context.ts";
import { writeUpgradeError } from "./http-util.ts";

/** Connections the namespace holds right now. */
export function namespaceConnections(ctx: EmulatorContext): number {
  return ctx.controlChannels.size + ctx.stats.activeConnections + ctx.rendezvous.size;
}

/** Refuses the upgrade on `socket` when the namespace is at its connection quota. */
export function refuseOverNamespaceQuota(ctx: EmulatorContext, socket: Duplex): boolean {
  const max = ctx.options.maxConnectionsPerNamespace;
  if (namespaceConnections(ctx) < max) return false;
  ctx.stats.refusedOverNamespaceQuota++;
  writeUpgradeError(
    socket,
    ctx.options.listenerQuotaStatus,
    `QuotaExceeded: the namespace already holds ${max} concurrent connections`,
  );
  return true;
}
