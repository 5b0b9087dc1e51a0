/**
 * The fleet status page as Azure Functions HTTP functions (same function-key authentication as
 * the API: open it as `/api/fleet?code=<key>`; the page sends the key on its own requests):
 * `GET fleet` is the page, `GET fleet/data` one page of sites (search, paging) and
 * `GET fleet/data/sites/{id}` one site with its mappings and recent audit records. The page polls
 * the data routes, so it works the same behind the Functions host (no long-lived responses).
 */
import { randomBytes } from "node:crypto";
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from "@azure/functions";
import { RelayFleetError } from "../../../../lib/errors.ts";
import { EDGE_AGENT_MODULE_ID } from "../../../../lib/fleet-deployment.ts";
import { readAudit } from "../audit/sources.ts";
import { getAuditSources, getRollout } from "../config.ts";
import { MODULE_ID } from "../rollout/desired-twin.ts";
import type { Rollout } from "../rollout/index.ts";
import { rolloutSettingsSchema } from "../settings.ts";
import { buildFleetView, cachedView, type FleetView, pageOfSites } from "../status-page/fleet-view.ts";
import { gatewayMetricsConfig, readGatewayTraffic } from "../status-page/gateway-metrics.ts";
import { statusPageHtml } from "../status-page/page.ts";
import { errorResponse, json } from "./http-response.ts";
import type { ApiRoute } from "./sites.ts";

/**
 * Where a site's recent audit records come from: by default the app's audit sources
 * (config.ts `getAuditSources`, the same as `GET /api/audit`); tests may install another.
 */
export type AuditSource = (siteId: string, limit: number) => Promise<unknown[] | undefined>;
let auditSource: AuditSource | undefined;
export function setAuditSource(source: AuditSource | undefined): void {
  auditSource = source;
}

const SITE_AUDIT_LIMIT = 50;

/** The site's newest records, or undefined when none can be read here (the page says so). */
async function siteAudit(siteId: string): Promise<unknown[] | undefined> {
  try {
    if (auditSource) return await auditSource(siteId, SITE_AUDIT_LIMIT);
    const sources = getAuditSources();
    if (sources.length === 0) return undefined;
    return (await readAudit(sources, { site: siteId, limit: SITE_AUDIT_LIMIT })).records;
  } catch {
    return undefined;
  }
}

// Read through its documented setting (settings.ts), so 0 means "no cache" as documented
// (`Number(...) || 1500` turned 0 into the default) and a bad value is refused at start.
const CACHE_MS =
  rolloutSettingsSchema.shape.STATUS_PAGE_CACHE_MS.parse(process.env.STATUS_PAGE_CACHE_MS) ?? 1500;
const views = new WeakMap<Rollout, () => Promise<FleetView>>();

function viewOf(rollout: Rollout): Promise<FleetView> {
  let get = views.get(rollout);
  if (!get) {
    get = cachedView(async () => {
      const [sites, twins, agentTwins, traffic] = await Promise.all([
        rollout.listSites(),
        rollout.deps.hub.queryModuleTwins(MODULE_ID),
        // Each device's IoT Edge agent: the module's deployment state, as `relay-fleet status` shows it.
        rollout.deps.hub.queryModuleTwins(EDGE_AGENT_MODULE_ID),
        gatewayMetricsConfig().then(readGatewayTraffic),
      ]);
      return buildFleetView(sites, twins, traffic, new Date(), agentTwins);
    }, CACHE_MS);
    views.set(rollout, get);
  }
  return get();
}

function page(): HttpResponseInit {
  const nonce = randomBytes(16).toString("base64");
  return {
    status: 200,
    body: statusPageHtml(nonce),
    headers: {
      "content-type": "text/html; charset=utf-8",
      "cache-control": "no-store",
      // The key is in the page's URL: never send it on as a referrer, never frame the page.
      "referrer-policy": "no-referrer",
      "x-content-type-options": "nosniff",
      "content-security-policy": `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'`,
    },
  };
}

function handler(fn: (request: HttpRequest) => Promise<HttpResponseInit>) {
  return async (request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> => {
    try {
      return await fn(request);
    } catch (err) {
      return errorResponse(err, context);
    }
  };
}

const int = (v: string | null, fallback: number) => {
  const n = Number(v);
  return Number.isInteger(n) && n > 0 ? n : fallback;
};

export const STATUS_PAGE_ROUTES: ApiRoute[] = [
  { name: "status-page", method: "GET", route: "fleet", handler: handler(async () => page()) },
  {
    name: "status-page-data",
    method: "GET",
    route: "fleet/data",
    handler: handler(async (request) => {
      const view = await viewOf(await getRollout());
      const q = request.query;
      return json(
        200,
        pageOfSites(view, q.get("q") ?? "", int(q.get("page"), 1), int(q.get("pageSize"), 50)),
      );
    }),
  },
  {
    name: "status-page-site",
    method: "GET",
    route: "fleet/data/sites/{id}",
    handler: handler(async (request) => {
      const id = request.params.id ?? "";
      const view = await viewOf(await getRollout());
      const site = view.sites.find((s) => s.siteId === id);
      if (!site)
        throw new RelayFleetError("RF_ERR_ROLLOUT_SITE_NOT_FOUND", `Site ${id.slice(0, 80)} does not exist.`);
      const audit = await siteAudit(id);
      return json(200, {
        generatedAt: view.generatedAt,
        site,
        audit: audit === undefined ? { available: false, records: [] } : { available: true, records: audit },
      });
    }),
  },
];

for (const r of STATUS_PAGE_ROUTES) {
  app.http(r.name, { methods: [r.method], route: r.route, authLevel: "function", handler: r.handler });
}
