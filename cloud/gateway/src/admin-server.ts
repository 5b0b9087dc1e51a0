/**
 * The admin HTTP port: `/healthz` (process alive), `/readyz` (routing table loaded, not draining:
 * what a load balancer probes), `/metrics` (Prometheus) and `POST /reload` (re-read the ledger
 * now). When a token is configured, `/reload` and `/metrics` need `Authorization: Bearer <token>`.
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
}

function send(res: ServerResponse, status: number, body: unknown, type = "application/json"): void {
  const text = typeof body === "string" ? body : `${JSON.stringify(body)}\n`;
  res.writeHead(status, { "content-type": type, "cache-control": "no-store" });
  res.end(text);
}

function authorised(req: IncomingMessage, token: string | undefined): boolean {
  if (!token) return true;
  const given = Buffer.from(req.headers.authorization ?? "");
  const want = Buffer.from(`Bearer ${token}`);
  return given.length === want.length && timingSafeEqual(given, want);
}

export function createAdminServer(options: AdminOptions): Server {
  const { gateway, metrics, log, token, relayAuth } = options;
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
        return gateway.ready && (auth?.ready ?? true)
          ? send(res, 200, { status: "ready", listening: gateway.listening().length, ...detail })
          : send(res, 503, { status: "not-ready", ...detail });
      }
      if (path === "/metrics" && req.method === "GET") {
        if (!authorised(req, token)) return send(res, 401, { error: "unauthorized" });
        return send(res, 200, await metrics.registry.metrics(), metrics.registry.contentType);
      }
      if (path === "/reload" && req.method === "POST") {
        if (!authorised(req, token)) return send(res, 401, { error: "unauthorized" });
        req.resume();
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
