/** A tiny method + path-pattern router; each resource file contributes its routes. */
import type { IncomingMessage } from "node:http";
import type { ConfigurationService } from "../configurations.ts";
import type { Hub } from "../hub.ts";
import type { MethodDispatcher } from "../mqtt/methods.ts";
import type { QueryThrottle } from "../query/throttle.ts";
import type { HubQuotas } from "../quotas.ts";
import type { HubRbac } from "../rbac.ts";
import type { TelemetryLog } from "../telemetry.ts";
import type { RestResult } from "./http.ts";

export interface RestContext {
  hub: Hub;
  methods: MethodDispatcher;
  configurations: ConfigurationService;
  queryThrottle: QueryThrottle;
  /** IoT Hub's operation throttles for the emulated SKU (unthrottled without one). */
  quotas: HubQuotas;
  /** Device-to-cloud messages the hub kept (the emulator-only messages route reads them). */
  telemetry: TelemetryLog;
  /** Role assignments and trusted issuers for bearer tokens (absent: SAS only). */
  rbac?: HubRbac;
}

export interface RouteRequest {
  params: string[];
  /** The query string (routes that take parameters read them here). */
  query: URLSearchParams;
  /** Parsed JSON body (undefined when empty). */
  body: unknown;
  headers: IncomingMessage["headers"];
  /** `If-Match`, when sent. */
  ifMatch: string | undefined;
}

export interface Route {
  method: "GET" | "PUT" | "PATCH" | "POST" | "DELETE";
  /** Path pattern without query; capture groups become `params` (URI-decoded). */
  pattern: RegExp;
  handle(ctx: RestContext, req: RouteRequest): RestResult | Promise<RestResult>;
}

/** One path segment (ids may contain most punctuation, never `/`). */
export const SEG = "([^/]+)";

export function route(method: Route["method"], path: string, handle: Route["handle"]): Route {
  return { method, pattern: new RegExp(`^${path}/?$`), handle };
}
