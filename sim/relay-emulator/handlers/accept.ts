/**
 * `sb-hc-action=accept`: the listener comes to the rendezvous (relay-protocol.md §1.3, §5.4-5.5).
 * The address is the credential (no token). Unknown, used or expired → 403 "The URL is not valid".
 * With `sb-hc-statusCode` it is a rejection (reject.ts). Otherwise: complete the listener's upgrade,
 * then the sender's held one (echoing the listener's subprotocol), and join them.
 */
import type { IncomingMessage } from "node:http";
import type { EmulatorContext, PendingRendezvous, UpgradeRequest } from "../context.ts";
import { writeUpgradeError } from "../http-util.ts";
import { RelayPair } from "../relay-pair.ts";
import { handleReject } from "./reject.ts";

/** The subprotocol each relay-leg request is answered with (read by the relay server's handleProtocols). */
export const chosenProtocol = new WeakMap<IncomingMessage, string>();

export function handleAccept(ctx: EmulatorContext, u: UpgradeRequest): void {
  const key = u.query.get("sb-hc-id") ?? "";
  const pending = ctx.rendezvous.get(key);
  const resolved = ctx.namespace.resolve(u.path);
  if (!pending || !resolved || resolved.hc !== pending.hc) {
    writeUpgradeError(u.socket, 403, "The URL is not valid");
    return;
  }
  // Single use: whatever happens next, this address is spent.
  ctx.rendezvous.delete(key);
  clearTimeout(pending.timer);
  if (u.query.has("sb-hc-statusCode")) {
    handleReject(ctx, u, pending);
    return;
  }
  join(ctx, u, pending);
}

function join(ctx: EmulatorContext, u: UpgradeRequest, pending: PendingRendezvous): void {
  // The listener answers with at most the one subprotocol it accepted; the sender gets the same.
  const listenerProtocol = firstProtocol(u.req.headers["sec-websocket-protocol"]);
  if (listenerProtocol) {
    chosenProtocol.set(u.req, listenerProtocol);
    chosenProtocol.set(pending.req, listenerProtocol);
  }
  ctx.relayServer.handleUpgrade(u.req, u.socket, u.head, (listenerWs) => {
    const sender = pending.socket;
    if (pending.senderGone || sender.destroyed || !sender.writable) {
      listenerWs.on("error", () => undefined);
      listenerWs.close(ctx.options.abnormalCloseCode, "sender disconnected");
      return;
    }
    pending.release?.();
    ctx.relayServer.handleUpgrade(pending.req, sender, pending.head, (senderWs) => {
      // release() paused the socket explicitly, so ws's 'data' listener alone would not restart it.
      sender.resume();
      ctx.stats.accepts++;
      ctx.stats.hc(pending.hc.name).accepts++;
      const pair = new RelayPair({
        id: pending.id,
        hybridConnection: pending.hc.name,
        sender: senderWs,
        listener: listenerWs,
        options: ctx.options,
        stats: ctx.stats,
        onEnd: (p) => ctx.pairs.delete(p),
      });
      ctx.pairs.add(pair);
    });
  });
}

function firstProtocol(header: string | undefined): string | undefined {
  const first = header?.split(",")[0]?.trim();
  return first ? first : undefined;
}
