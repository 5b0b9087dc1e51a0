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

/** Extra `Name: value` lines for a sender's 101: headers the listener set on its rendezvous (§1.3 step 3). */
export const extraResponseHeaders = new WeakMap<IncomingMessage, string[]>();

// Handshake, hop-by-hop and credential headers are the rendezvous request's own, not for the sender.
const NOT_FORWARDED = new Set([
  "host",
  "upgrade",
  "connection",
  "sec-websocket-key",
  "sec-websocket-version",
  "sec-websocket-extensions",
  "sec-websocket-protocol",
  "content-length",
  "transfer-encoding",
  "servicebusauthorization",
  "authorization",
  "user-agent",
  "accept-encoding",
]);

function listenerResponseHeaders(rawHeaders: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    // hyco-ws sends a bogus header named "0" (relay-protocol.md §3.4): names must start with a letter
    if (NOT_FORWARDED.has(name.toLowerCase()) || !/^[A-Za-z][A-Za-z0-9-]*$/.test(name)) continue;
    out.push(`${name}: ${rawHeaders[i + 1]!.replace(/[\r\n]/g, " ")}`);
    if (out.length >= 32) break;
  }
  return out;
}

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
  const extra = listenerResponseHeaders(u.req.rawHeaders);
  if (extra.length > 0) extraResponseHeaders.set(pending.req, extra);
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
