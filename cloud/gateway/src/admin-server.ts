/**
 * The admin HTTP port: `/healthz` (process alive), `/readyz` (routing table loaded, not draining:
 * what a load balancer probes), `/metrics` (Prometheus) and `POST /reload` (re-read the ledger
 * now). The probes are always open. `/metrics` (it lists routes and traffic) and `/reload` (each
 * call reads the ledger) are not open by default: with a token configured they need
 * `Authorization: Bearer <token>`; without one they answer only when the admin port is bound to
 * a loopback address, and refuse with 403 on any other bind (such as the default 0.0.0.0).
 */
import { timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { errorMessage } from "../../../lib/errors.ts";
import type { Logger } from "../../../lib/log.ts";
import type { Gateway } from "./gateway.ts";
import type { GatewayMetrics } from "./metrics.ts";

export interface AdminOptions {
  gateway: Gateway;
  metrics: GatewayMetrics;
  log: Logger;
  token?: string;
  /**
   * The relay credential's state for /readyz: not ready while no valid Entra ID token is held;
   * a failing refresh (old token still valid) and the last refusal by the relay are reported.
   */
  relayAuth?: () => { ready: boolean; [detail: string]: unknown };
  /** The address the admin port binds: without a token, only a loopback bind serves `/metrics` and `/reload`. */
  host: string;
}

/** True for addresses only this machine can reach: 127.0.0.0/8, ::1, localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, "");
  return h === "localhost" || h === "::1" || /^(::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** Who may call a privileged admin endpoint; `undefined` = allowed, else the refusal. */
export function privilegedRefusal(
  authorization: string | undefined,
  token: string | undefined,
  host: string,
): { status: 401 | 403; error: string } | undefined {
  if (token) {
    const given = Buffer.from(authorization ?? "");
    const want = Buffer.from(`Bearer ${token}`);
    return given.length === want.length && timingSafeEqual(given, want)
      ? undefined
      : { status: 401, error: "unauthorized: send Authorization: Bearer <GATEWAY_ADMIN_TOKEN>" };
  }
  if (isLoopbackHost(host)) return undefined;
  return {
    status: 403,
    error:
      "forbidden: set GATEWAY_ADMIN_TOKEN, or bind the admin port to a loopback address (GATEWAY_HEALTH_HOST), to use /metrics and /reload",
  };
}

function send(res: ServerResponse, status: number, body: unknown, type = "application/json"): void {
  const text = typeof body === "string" ? body : `${JSON.stringify(body)}\n`;
  res.writeHead(status, { "content-type": type, "cache-control": "no-store" });
  res.end(text);
}

export function createAdminServer(options: AdminOptions): Server {
  const { gateway, metrics, log, token, host, relayAuth } = options;
  const refusal = (req: IncomingMessage) => privilegedRefusal(req.headers.authorization, token, host);
  return createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    void (async () => {
      if (req.method === "GET" && path === "/healthz") return send(res, 200, { status: "ok" });
      if (req.method === "GET" && path === "/readyz") {
        const auth = relayAuth?.();
        const detail = {
          ...(auth ? { relayAuth: auth } : {}),
          // Rows the gateway cannot serve: ready for the others, but each one is a broken route.
          badRows: gateway.badRows.map(({ partitionKey, rowKey, message }) => ({
            partitionKey,
            rowKey,
            message,
          })),
        };
        if (!gateway.ready || !(auth?.ready ?? true))
          return send(res, 503, { status: "not-ready", ...detail });
        // A port that cannot be bound is reported, not hidden, but keeps the answer 200: with one
        // probe for every port, 503 would take this instance out for all its other routes too.
        const unbound = gateway.unbound();
        return send(res, 200, {
          status: unbound.length > 0 ? "degraded" : "ready",
          listening: gateway.listeningCount,
          unbound,
          ...detail,
        });
      }
      if (path === "/metrics" && req.method === "GET") {
        const refused = refusal(req);
        if (refused) return send(res, refused.status, { error: refused.error });
        return send(res, 200, await metrics.registry.metrics(), metrics.registry.contentType);
      }
      if (path === "/reload" && req.method === "POST") {
        req.resume();
        const refused = refusal(req);
        if (refused) return send(res, refused.status, { error: refused.error });
        const result = await gateway.reload();
        log.info({ event: "reload-requested", ok: result.ok }, "reload on demand");
        return send(res, result.ok ? 200 : 503, result);
      }
      send(res, 404, { error: "not found" });
    })().catch((err) => {
      log.error({ err: errorMessage(err) }, "admin request failed");
      if (!res.headersSent) send(res, 500, { error: "internal error" });
      else res.destroy();
    });
  });
}
