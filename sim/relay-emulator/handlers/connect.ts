/**
 * `sb-hc-action=connect` (or no action): a sender wants a listener (relay-protocol.md §1.3, §5.3).
 * Steps: resolve the entity (404), check Send unless the entity allows anonymous senders
 * (401/403), injected refusal, pick a listener (404 when none), hold the upgrade (no 101 yet),
 * register a single-use unguessable rendezvous that expires, and send `accept` to the listener.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { authorize, tokenFromRequest } from "../auth.ts";
import type { EmulatorContext, PendingRendezvous, UpgradeRequest } from "../context.ts";
import type { AcceptMessage, ControlChannel } from "../control-channel.ts";
import { writeUpgradeError } from "../http-util.ts";
import type { HybridConnection } from "../namespace.ts";
import { refuseOverNamespaceQuota } from "../quotas.ts";
import { hostOf } from "./listen.ts";

const TOKEN_HEADERS = new Set(["servicebusauthorization"]);

/** All of the sender's headers, names as sent, duplicates joined; the token header dropped. */
function connectHeaders(rawHeaders: string[], dropAuthorization: boolean): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const lower = name.toLowerCase();
    if (TOKEN_HEADERS.has(lower) || (dropAuthorization && lower === "authorization")) continue;
    const existing = Object.keys(out).find((k) => k.toLowerCase() === lower);
    if (existing) out[existing] = `${out[existing]}, ${rawHeaders[i + 1]}`;
    else out[name] = rawHeaders[i + 1]!;
  }
  return out;
}

/** `/$hc/{name}{suffix}?{app query}&sb-hc-action=accept&sb-hc-id={key}` on the host the listener used. */
function rendezvousAddress(
  ctx: EmulatorContext,
  listener: ControlChannel,
  hc: HybridConnection,
  suffix: string,
  query: URLSearchParams,
  key: string,
): string {
  const path = `${hc.name}${suffix}`.split("/").map(encodeURIComponent).join("/");
  const app = new URLSearchParams();
  for (const [k, v] of query) if (!k.toLowerCase().startsWith("sb-hc-")) app.append(k, v);
  app.append("sb-hc-action", "accept");
  app.append("sb-hc-id", key);
  return `${ctx.scheme}://${listener.host}/$hc/${path}?${app.toString()}`;
}

/** The same checks ws does before a 101, so a listener is never offered a sender ws would refuse. */
function validWebSocketRequest(u: UpgradeRequest): boolean {
  const h = u.req.headers;
  return (
    u.req.method === "GET" &&
    typeof h.upgrade === "string" &&
    h.upgrade.toLowerCase() === "websocket" &&
    typeof h["sec-websocket-key"] === "string" &&
    /^[+/0-9A-Za-z]{22}==$/.test(h["sec-websocket-key"]) &&
    (h["sec-websocket-version"] === "13" || h["sec-websocket-version"] === "8")
  );
}

export function handleConnect(ctx: EmulatorContext, u: UpgradeRequest): void {
  if (!validWebSocketRequest(u)) {
    ctx.stats.badRequests++;
    writeUpgradeError(u.socket, 400, "Bad Request: not a WebSocket upgrade");
    return;
  }
  const resolved = ctx.namespace.resolve(u.path);
  if (!resolved) {
    writeUpgradeError(u.socket, 404, "Endpoint does not exist");
    return;
  }
  const { hc, suffix } = resolved;
  ctx.stats.connects++;
  ctx.stats.hc(hc.name).connects++;
  const token = tokenFromRequest(u.req, u.query);
  if (hc.requiresClientAuthorization) {
    const auth = authorize(ctx.namespace, hc, "Send", token, {
      host: ctx.options.checkTokenHost ? hostOf(u.req.headers.host) : undefined,
      suffix,
    });
    if (!auth.ok) {
      ctx.stats.authFailures++;
      writeUpgradeError(u.socket, auth.status, auth.description);
      return;
    }
  }
  const refusal = ctx.faults.takeRefusal(hc.name);
  if (refusal) {
    writeUpgradeError(u.socket, refusal.status, refusal.description);
    return;
  }
  if (refuseOverNamespaceQuota(ctx, u.socket)) return;
  const listener = ctx.pickListener(hc);
  if (!listener) {
    writeUpgradeError(u.socket, 404, "There are no listeners connected for the endpoint");
    return;
  }
  const senderId = u.query.get("sb-hc-id");
  const id = senderId && senderId.length <= 128 ? senderId : randomUUID();
  // The id may be the sender's (guessable); the secret suffix makes the address a credential.
  const key = `${id}_${randomBytes(16).toString("hex")}`;
  const pending: PendingRendezvous = {
    key,
    id,
    hc,
    req: u.req,
    socket: u.socket,
    head: u.head,
    senderGone: false,
    listenerId: listener.id,
    timer: setTimeout(() => expire(ctx, pending), ctx.options.rendezvousTimeoutMs),
  };
  pending.timer.unref();
  ctx.rendezvous.set(key, pending);
  watchHeldSocket(pending);
  const message: AcceptMessage = {
    accept: {
      address: rendezvousAddress(ctx, listener, hc, suffix, u.query, key),
      id,
      connectHeaders: connectHeaders(
        u.req.rawHeaders,
        token !== undefined && token === u.req.headers.authorization,
      ),
      remoteEndpoint: { address: u.remoteAddress, port: u.remotePort },
    },
  };
  const send = () => {
    if (!ctx.rendezvous.has(key)) return;
    if (!listener.sendAccept(message)) {
      ctx.rendezvous.delete(key);
      clearTimeout(pending.timer);
      writeUpgradeError(u.socket, 404, "There are no listeners connected for the endpoint");
    }
  };
  const delay = ctx.faults.takeDelay(hc.name);
  if (delay && delay.ms > 0) setTimeout(send, delay.ms).unref();
  else send();
}

/** Nobody came to the rendezvous in time: the sender gets 504 (or the configured status). */
function expire(ctx: EmulatorContext, pending: PendingRendezvous): void {
  if (ctx.rendezvous.get(pending.key) !== pending) return;
  ctx.rendezvous.delete(pending.key);
  ctx.stats.rendezvousExpired++;
  writeUpgradeError(
    pending.socket,
    ctx.options.rendezvousTimeoutStatus,
    "ConnectionNotEstablished: None of the connected listeners accepted the connection within the allowed timeout",
  );
}

/**
 * While held, the sender's socket is read so that its FIN is noticed (a paused socket never sees
 * EOF, and HTTP server sockets are half-open). Early bytes (none expected before a 101) are kept
 * and handed to ws with `head` when the upgrade completes; a peer that floods is cut.
 */
function watchHeldSocket(pending: PendingRendezvous): void {
  const socket = pending.socket;
  const early: Buffer[] = [pending.head];
  let size = pending.head.length;
  const onData = (chunk: Buffer) => {
    size += chunk.length;
    if (size > 64 * 1024) socket.destroy();
    else early.push(chunk);
  };
  const onEnd = () => {
    pending.senderGone = true;
    socket.destroy();
  };
  const onClose = () => {
    pending.senderGone = true;
  };
  socket.on("data", onData);
  socket.on("end", onEnd);
  socket.on("close", onClose);
  socket.resume();
  pending.release = () => {
    socket.removeListener("data", onData);
    socket.removeListener("end", onEnd);
    socket.removeListener("close", onClose);
    socket.pause();
    pending.head = Buffer.concat(early);
  };
}
