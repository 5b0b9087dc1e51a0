/**
 * `GET /api/audit?site=&since=&limit=`: the tunnels' audit records, newest first, from the audit
 * sources the app is configured with (config.ts `getAuditSources`); what `relay-fleet audit`
 * calls. Function-key authentication like every other route.
 */
import { app } from "@azure/functions";
import { parseAuditQuery } from "../audit/query.ts";
import { readAudit } from "../audit/sources.ts";
import { getAuditSources } from "../config.ts";
import { errorResponse, json } from "./http-response.ts";
import type { ApiRoute } from "./sites.ts";

export const AUDIT_ROUTES: ApiRoute[] = [
  {
    name: "audit-list",
    method: "GET",
    route: "audit",
    handler: async (request, context) => {
      try {
        const selection = parseAuditQuery(request.query);
        return json(200, await readAudit(getAuditSources(), selection));
      } catch (err) {
        return errorResponse(err, context);
      }
    },
  },
];

for (const r of AUDIT_ROUTES) {
  app.http(r.name, { methods: [r.method], route: r.route, authLevel: "function", handler: r.handler });
}
