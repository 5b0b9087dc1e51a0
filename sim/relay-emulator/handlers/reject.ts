/**
 * Rejection (relay-protocol.md §1.3 step 6, §5.6): the listener connects to the rendezvous address
 * plus `sb-hc-statusCode` / `sb-hc-statusDescription`. The service answers the listener 410 Gone
 * (success) and the held sender gets that status with the description as reason phrase.
 */
import type { EmulatorContext, PendingRendezvous, UpgradeRequest } from "../context.ts";
import { writeUpgradeError } from "../http-util.ts";

export function handleReject(ctx: EmulatorContext, u: UpgradeRequest, pending: PendingRendezvous): void {
  const raw = u.query.get("sb-hc-statusCode") ?? "";
  const status = /^\d{3}$/.test(raw) ? Number(raw) : Number.NaN;
  if (!(status >= 400 && status <= 599)) {
    // Not a usable status: tell the listener, and keep the address usable for a proper answer.
    ctx.rendezvous.set(pending.key, pending);
    pending.timer.refresh();
    writeUpgradeError(u.socket, 400, "Invalid sb-hc-statusCode: expected 400-599");
    return;
  }
  const description = u.query.get("sb-hc-statusDescription") ?? undefined;
  ctx.stats.rejects++;
  ctx.stats.hc(pending.hc.name).rejects++;
  writeUpgradeError(pending.socket, status, description);
  writeUpgradeError(u.socket, 410, "Gone: the connection was rejected");
}
