/**
 * `sb-hc-action=listen`: a listener registers on a hybrid connection (relay-protocol.md §1.2, §5.2).
 * Steps: count the attempt per source (a hyco-ws reconnect storm shows up here), resolve the
 * entity (404), check the Listen right (401/403), check the 25-listener quota, upgrade.
 */
import { authorize, tokenFromRequest } from "../auth.ts";
import type { EmulatorContext, UpgradeRequest } from "../context.ts";
import { ControlChannel } from "../control-channel.ts";
import { writeUpgradeError } from "../http-util.ts";
import { refuseOverNamespaceQuota } from "../quotas.ts";

const windows = new WeakMap<EmulatorContext, Map<string, { start: number; count: number }>>();

/** Counts a listen attempt from `source`; true when it is over the configured rate. */
function overRate(ctx: EmulatorContext, source: string): boolean {
  ctx.stats.listenAttempts++;
  const bySource = ctx.stats.listenAttemptsBySource;
  if (bySource.size < 10_000 || bySource.has(source)) bySource.set(source, (bySource.get(source) ?? 0) + 1);
  let perSource = windows.get(ctx);
  if (!perSource) {
    perSource = new Map();
    windows.set(ctx, perSource);
  }
  const now = Date.now();
  let w = perSource.get(source);
  if (!w || now - w.start >= ctx.options.listenRateWindowMs) {
    w = { start: now, count: 0 };
    perSource.set(source, w);
    if (perSource.size > 10_000) perSource.clear(); // bounded memory under address churn
  }
  w.count++;
  if (w.count === ctx.options.listenRateLimit + 1 || w.count % 1000 === 0) {
    ctx.logger.warn(
      { source, attemptsInWindow: w.count },
      "listen attempts from one source above the rate limit",
    );
  }
  return ctx.options.listenRateLimit > 0 && w.count > ctx.options.listenRateLimit;
}

export function handleListen(ctx: EmulatorContext, u: UpgradeRequest): void {
  if (overRate(ctx, u.remoteAddress)) {
    ctx.stats.listenRateLimited++;
    writeUpgradeError(
      u.socket,
      ctx.options.listenRateLimitStatus,
      "Too many listen attempts from this address",
    );
    return;
  }
  const resolved = ctx.namespace.resolve(u.path);
  if (!resolved) {
    writeUpgradeError(u.socket, 404, "Endpoint does not exist");
    return;
  }
  const { hc, suffix } = resolved;
  ctx.stats.hc(hc.name).listenAttempts++;
  const auth = authorize(ctx.namespace, hc, "Listen", tokenFromRequest(u.req, u.query), {
    host: ctx.options.checkTokenHost ? hostOf(u.req.headers.host) : undefined,
    suffix,
  });
  if (!auth.ok) {
    ctx.stats.authFailures++;
    writeUpgradeError(u.socket, auth.status, auth.description);
    return;
  }
  if (hc.listeners.size >= ctx.options.maxListenersPerHybridConnection) {
    ctx.stats.listenersRefusedOverQuota++;
    writeUpgradeError(
      u.socket,
      ctx.options.listenerQuotaStatus,
      `QuotaExceeded: the hybrid connection already has ${hc.listeners.size} listeners`,
    );
    return;
  }
  if (refuseOverNamespaceQuota(ctx, u.socket)) return;
  const host = u.req.headers.host ?? `${ctx.options.host}:${ctx.options.port}`;
  ctx.controlServer.handleUpgrade(u.req, u.socket, u.head, (ws) => {
    if (!ctx.namespace.get(hc.name)) {
      ws.close(1001, "The hybrid connection was deleted");
      return;
    }
    const cc = new ControlChannel(ctx, ws, hc, {
      host,
      remoteAddress: u.remoteAddress,
      expiresAtSeconds: auth.expiresAt,
    });
    ctx.logger.info({ hc: hc.name, listener: cc.id, source: u.remoteAddress }, "listener registered");
  });
}

/** Host without port, for the optional token host check. */
export function hostOf(hostHeader: string | undefined): string | undefined {
  if (!hostHeader) return undefined;
  try {
    return new URL(`http://${hostHeader}`).hostname.replace(/^\[|\]$/g, "");
  } catch {
    return undefined;
  }
}
