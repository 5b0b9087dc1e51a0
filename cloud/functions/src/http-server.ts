/**
 * Serves the Functions app's own handlers over plain node:http, in-process, for the local
 * simulation and tests (the Functions Core Tools cannot be installed here). Requests become
 * `@azure/functions` `HttpRequest` objects and go to exactly the handlers the Functions host
 * registers (`ROUTES`), behind the same function-key check (`x-functions-key` header or `code`
 * query). Event Grid deliveries arrive where the real host takes them,
 * `POST /runtime/webhooks/EventGrid?functionName=<name>`, including the subscription-validation
 * handshake.
 */
import { randomBytes, randomUUID, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type {
  EventGridEvent,
  HttpResponseInit,
  InvocationContext as InvocationContextType,
} from "@azure/functions";
import functions from "@azure/functions";
import { errorMessage, hasErrorCode, RelayFleetError } from "../../../lib/errors.ts";
import { readLimitedBody } from "../../../lib/http-body.ts";
import { createLogger, type Logger } from "../../../lib/log.ts";
import { setRollout } from "./config.ts";
import type { ApiRoute } from "./functions/sites.ts";
import type { Rollout } from "./rollout/index.ts";

export interface RolloutHttpServer {
  /** `http://127.0.0.1:<port>` */
  url: string;
  port: number;
  /** The function key clients must send. */
  functionKey: string;
  /** Event Grid webhook URL for the IoT Hub (emulator) subscription, key included. */
  eventGridUrl: string;
  close(): Promise<void>;
}

// A CommonJS bundle: Node's ESM loader cannot see all its named exports, so take the default.
const { HttpRequest, InvocationContext } = functions;
type InvocationContext = InvocationContextType;

const MAX_BODY = 1024 * 1024;

interface Loaded {
  routes: ApiRoute[];
  eventHandlers: Map<string, (e: EventGridEvent, c: InvocationContext) => Promise<void>>;
}

/** Imports the trigger modules with the package's "no Functions host" warnings silenced. */
async function loadHandlers(): Promise<Loaded> {
  const warn = console.warn;
  console.warn = (...args: unknown[]) => {
    if (typeof args[0] === "string" && args[0].startsWith("WARNING:") && /functions/i.test(args[0])) return;
    warn(...args);
  };
  try {
    const [{ ROUTES }, { STATUS_PAGE_ROUTES }, { AUDIT_ROUTES }, { ONBOARDING_ROUTES }, events] =
      await Promise.all([
        import("./functions/sites.ts"),
        import("./functions/status-page.ts"),
        import("./functions/audit.ts"),
        import("./functions/onboarding-jobs.ts"),
        import("./functions/device-events.ts"),
      ]);
    return {
      routes: [...ROUTES, ...STATUS_PAGE_ROUTES, ...AUDIT_ROUTES, ...ONBOARDING_ROUTES],
      eventHandlers: new Map([[events.DEVICE_EVENTS_FUNCTION, events.deviceLifecycleHandler]]),
    };
  } finally {
    console.warn = warn;
  }
}

/** Matches a Functions route template (`sites/{id}/mappings/{name}`) against a path under /api. */
export function matchRoute(template: string, path: string): Record<string, string> | undefined {
  const t = template.split("/");
  const p = path.split("/");
  if (t.length !== p.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < t.length; i++) {
    const seg = t[i] as string;
    const got = p[i] as string;
    if (seg.startsWith("{") && seg.endsWith("}")) {
      if (got === "") return undefined;
      try {
        params[seg.slice(1, -1)] = decodeURIComponent(got);
      } catch {
        return undefined;
      }
    } else if (seg.toLowerCase() !== got.toLowerCase()) return undefined;
  }
  return params;
}

/**
 * A body of at most `maxBytes` (lib/http-body.ts: a larger one is a 413 the client reads; past
 * 16 times the limit the connection is cut instead of drained).
 */
function readBody(req: IncomingMessage, maxBytes = MAX_BODY): Promise<string> {
  return readLimitedBody(req, {
    maxBytes,
    maxDiscardBytes: 16 * maxBytes,
    tooLarge: () =>
      new RelayFleetError(
        "RF_ERR_ROLLOUT_BODY_TOO_LARGE",
        `The request body is larger than ${maxBytes} bytes.`,
      ),
  });
}

function send(res: ServerResponse, status: number, body?: unknown): void {
  if (res.headersSent) return;
  if (body === undefined) {
    res.writeHead(status).end();
    return;
  }
  const text = JSON.stringify(body, null, 2);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

/** A text answer (the status page's HTML) with the handler's own headers. */
function sendText(res: ServerResponse, response: HttpResponseInit): void {
  if (res.headersSent) return;
  const text = String(response.body);
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries((response.headers ?? {}) as Record<string, string>))
    headers[k] = String(v);
  res.writeHead(response.status ?? 200, { ...headers, "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function contextFor(name: string, logger: Logger): InvocationContext {
  return new InvocationContext({
    invocationId: randomUUID(),
    functionName: name,
    logHandler: (level, ...args) => {
      const msg = args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" ");
      if (level === "error" || level === "critical") logger.error({ fn: name }, msg);
      else if (level === "warning") logger.warn({ fn: name }, msg);
      else logger.debug({ fn: name }, msg);
    },
  });
}

/** Starts the server on 127.0.0.1 (port 0 = any free port) serving `rollout` (or one set later with `setRollout`). */
export async function startRolloutHttpServer(
  rollout: Rollout | undefined,
  options: { port?: number; functionKey?: string; logger?: Logger } = {},
): Promise<RolloutHttpServer> {
  // undefined: installed later with setRollout (when the backends need the server's URL first).
  if (rollout) setRollout(rollout);
  const { routes, eventHandlers } = await loadHandlers();
  const functionKey = options.functionKey ?? randomBytes(24).toString("base64url");
  const logger = options.logger ?? createLogger("rollout-http");
  const keyBuf = Buffer.from(functionKey);

  const authorized = (req: IncomingMessage, url: URL) => {
    const given =
      (req.headers["x-functions-key"] as string | undefined) ?? url.searchParams.get("code") ?? "";
    const buf = Buffer.from(given);
    return buf.length === keyBuf.length && timingSafeEqual(buf, keyBuf);
  };

  async function handleEventGrid(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const handler = eventHandlers.get(url.searchParams.get("functionName") ?? "");
    if (!handler)
      return send(res, 404, {
        error: { code: "RF_ERR_ROLLOUT_NOT_FOUND", message: "No such Event Grid function." },
      });
    const text = await readBody(req);
    let events: unknown;
    try {
      events = JSON.parse(text);
    } catch {
      return send(res, 400, {
        error: { code: "RF_ERR_ROLLOUT_INVALID", message: "The Event Grid body is not valid JSON." },
      });
    }
    const list = Array.isArray(events) ? events : [events];
    const first = list[0] as { eventType?: unknown; data?: { validationCode?: unknown } } | undefined;
    if (
      req.headers["aeg-event-type"] === "SubscriptionValidation" ||
      first?.eventType === "Microsoft.EventGrid.SubscriptionValidationEvent"
    ) {
      return send(res, 200, { validationResponse: first?.data?.validationCode });
    }
    for (const e of list) {
      if (typeof e !== "object" || e === null) continue;
      await handler(e as EventGridEvent, contextFor("device-lifecycle", logger));
    }
    send(res, 200, { accepted: list.length });
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (url.pathname === "/api/health" && req.method === "GET") return send(res, 200, { status: "ok" });
    if (!authorized(req, url)) {
      return send(res, 401, {
        error: {
          code: "RF_ERR_ROLLOUT_UNAUTHORIZED",
          message: "A valid function key is required (x-functions-key header or code query parameter).",
        },
      });
    }
    if (url.pathname === "/runtime/webhooks/EventGrid" && req.method === "POST")
      return handleEventGrid(req, res, url);
    if (!url.pathname.startsWith("/api/"))
      return send(res, 404, { error: { code: "RF_ERR_ROLLOUT_NOT_FOUND", message: "Not found." } });
    const path = url.pathname.slice("/api/".length).replace(/\/$/, "");
    let pathMatched = false;
    for (const r of routes) {
      const params = matchRoute(r.route, path);
      if (!params) continue;
      pathMatched = true;
      if (r.method !== req.method) continue;
      const body = req.method === "GET" || req.method === "DELETE" ? "" : await readBody(req, r.maxBodyBytes);
      const request = new HttpRequest({
        method: r.method,
        url: `http://localhost${req.url ?? "/"}`,
        headers: Object.fromEntries(
          Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(", ") : (v ?? "")]),
        ),
        query: Object.fromEntries(url.searchParams),
        params,
        ...(body ? { body: { string: body } } : {}),
      });
      const response = (await r.handler(request, contextFor(r.name, logger))) as HttpResponseInit;
      if (typeof response.body === "string") return sendText(res, response);
      return send(res, response.status ?? 200, response.jsonBody);
    }
    if (pathMatched)
      return send(res, 405, {
        error: { code: "RF_ERR_ROLLOUT_METHOD", message: `Method ${req.method} is not allowed here.` },
      });
    send(res, 404, { error: { code: "RF_ERR_ROLLOUT_NOT_FOUND", message: `No API route ${url.pathname}.` } });
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (hasErrorCode(err, "RF_ERR_ROLLOUT_BODY_TOO_LARGE")) {
        return send(res, 413, {
          error: { code: "RF_ERR_ROLLOUT_BODY_TOO_LARGE", message: errorMessage(err) },
        });
      }
      logger.error({ err: errorMessage(err) }, "rollout http request failed");
      send(res, 500, {
        error: { code: "RF_ERR_ROLLOUT_INTERNAL", message: "The rollout service failed; see its log." },
      });
    });
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    port,
    functionKey,
    eventGridUrl: `${url}/runtime/webhooks/EventGrid?functionName=device-lifecycle&code=${encodeURIComponent(functionKey)}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
