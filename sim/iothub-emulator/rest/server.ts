/**
 * The HTTPS service API. Every request is authenticated with a service SAS (`skn` = a hub policy,
 * `sr` = the host name), or with a device-scoped token for that device's own routes (what
 * iotedgehubdev uses). Bodies are parsed as JSON up front: malformed JSON is a 400, never a crash.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { Logger } from "../../../lib/log.ts";
import { parseHubSasToken, verifyHubSasToken } from "../auth.ts";
import { HubError } from "../errors.ts";
import { listenOn } from "../listen.ts";
import { restQuotaClass } from "../quotas.ts";
import { dataActionFor } from "../rbac.ts";
import { tryParseJson } from "../state/json.ts";
import { bulkRegistryRoutes } from "./bulk-registry.ts";
import { configurationRoutes } from "./configurations.ts";
import { deviceRoutes } from "./devices.ts";
import { type ErrorFormat, errorResult, readBody, sendResult } from "./http.ts";
import { emulatorMessageRoutes } from "./messages.ts";
import { methodRoutes } from "./methods.ts";
import { moduleRoutes } from "./modules.ts";
import { queryRoutes } from "./query.ts";
import type { RestContext, Route } from "./router.ts";
import { twinRoutes } from "./twins.ts";

// Specific paths before the generic `/devices/{id}` ones.
const ROUTES: Route[] = [
  ...queryRoutes,
  ...configurationRoutes,
  ...moduleRoutes,
  ...bulkRegistryRoutes,
  ...deviceRoutes,
  ...methodRoutes,
  ...twinRoutes,
  ...emulatorMessageRoutes,
];

function authorize(ctx: RestContext, req: IncomingMessage, path: string): void {
  const token = req.headers.authorization;
  const host = ctx.hub.hostName;
  // Microsoft Entra ID (azure-iothub's fromTokenCredential sends `Bearer <jwt>`): Azure RBAC.
  if (typeof token === "string" && /^bearer\s/i.test(token)) {
    if (!ctx.rbac)
      throw new HubError("IotHubUnauthorizedAccess", "Microsoft Entra ID tokens are not accepted");
    ctx.rbac.authorize(token, dataActionFor(req.method ?? "GET", path));
    return;
  }
  const parsed = parseHubSasToken(token);
  if (parsed.keyName !== undefined) {
    const policy = ctx.hub.store.policies[parsed.keyName];
    if (!policy)
      throw new HubError("IotHubUnauthorizedAccess", `unknown shared access policy '${parsed.keyName}'`);
    verifyHubSasToken(token, [policy.primaryKey, policy.secondaryKey], host);
    return;
  }
  // Device-scoped token: only that device's own registry and twin routes.
  const m = /^\/(?:devices|twins)\/([^/]+)(?:\/|$)/.exec(path);
  const deviceId = m ? decodeURIComponent(m[1]!) : undefined;
  const keys = deviceId === undefined ? undefined : ctx.hub.keysFor(deviceId);
  if (!keys || !path.includes("/modules"))
    throw new HubError("IotHubUnauthorizedAccess", "a device token may only manage that device's modules");
  verifyHubSasToken(token, keys, `${host}/devices/${deviceId}`);
}

async function handle(ctx: RestContext, req: IncomingMessage): Promise<ReturnType<typeof errorResult>> {
  const url = new URL(req.url ?? "/", "https://hub");
  const path = url.pathname;
  authorize(ctx, req, path);
  const method = (req.method ?? "GET").toUpperCase();
  let matched: { route: Route; params: string[] } | undefined;
  let pathKnown = false;
  for (const r of ROUTES) {
    const m = r.pattern.exec(path);
    if (!m) continue;
    pathKnown = true;
    if (r.method !== method) continue;
    try {
      matched = { route: r, params: m.slice(1).map((p) => decodeURIComponent(p)) };
    } catch {
      throw new HubError("ArgumentInvalid", "malformed percent-encoding in the path");
    }
    break;
  }
  if (!matched) {
    if (pathKnown) throw new HubError("MethodNotAllowed", `${method} is not supported on ${path}`);
    throw new HubError("NotFound", `no such resource: ${path}`);
  }
  // Throttled before the body is read or anything is done: a refused request changes nothing.
  const quotaClass = restQuotaClass(method, path);
  if (quotaClass) ctx.quotas.take(quotaClass);
  const text = await readBody(req);
  let body: unknown;
  if (text.trim() !== "") {
    const parsed = tryParseJson(text);
    if (!parsed.ok) throw new HubError("ArgumentInvalid", `malformed JSON body: ${parsed.error}`);
    body = parsed.value;
  }
  const ifMatchHeader = req.headers["if-match"];
  return matched.route.handle(ctx, {
    params: matched.params,
    query: url.searchParams,
    body,
    headers: req.headers,
    ifMatch: Array.isArray(ifMatchHeader) ? ifMatchHeader[0] : ifMatchHeader,
  });
}

export interface RestServer {
  port: number;
  /** Error body format: `legacy` (default; best SDK mapping) or `modern` (JSON inside Message). */
  errorFormat: ErrorFormat;
  close(): Promise<void>;
}

export async function startRestServer(opts: {
  ctx: RestContext;
  host: string;
  port: number;
  cert: string;
  key: string;
  log: Logger;
  errorFormat?: ErrorFormat;
}): Promise<RestServer> {
  const state: { errorFormat: ErrorFormat } = { errorFormat: opts.errorFormat ?? "legacy" };
  const server: Server = createServer(
    { cert: opts.cert, key: opts.key },
    (req: IncomingMessage, res: ServerResponse) => {
      handle(opts.ctx, req)
        .then((result) => sendResult(res, result))
        .catch((err: unknown) => {
          if (!(err instanceof HubError)) opts.log.error({ err, url: req.url }, "REST handler failed");
          sendResult(res, errorResult(err, state.errorFormat));
        });
    },
  );
  // Node's 5 s default closes idle keep-alive sockets while SDK clients still hold them, so a
  // request sent as the server closes fails with "socket hang up". Azure's front ends keep idle
  // connections for minutes; so does the emulator.
  server.keepAliveTimeout = 120_000;
  server.on("tlsClientError", (err) => opts.log.debug({ err }, "TLS handshake failed"));
  server.on("clientError", (_err, socket) => socket.destroy());
  const port = await listenOn(server, opts.port, opts.host);
  return {
    port,
    get errorFormat() {
      return state.errorFormat;
    },
    set errorFormat(f: ErrorFormat) {
      state.errorFormat = f;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
