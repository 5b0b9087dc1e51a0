/**
 * Onboarding jobs (issue 18, ADR 0024): `POST /api/onboarding-jobs` `{ sites: [<site body>…] }`
 * checks every row and queues them (202 with the job; 400 naming each bad row, nothing queued);
 * `GET /api/onboarding-jobs/{jobId}` is the job's progress, which `relay-fleet sites add
 * --from-file` polls (`?sites=unfinished`: only the sites not yet succeeded, the counts whole). Function-key authentication like every other route.
 */
import { app } from "@azure/functions";
import { RelayFleetError } from "../../../../lib/errors.ts";
import { getRollout } from "../config.ts";
import { ValidationError } from "../rollout/errors.ts";
import { JOB_SITES_VIEWS, type JobSitesView } from "../rollout/onboarding-queue.ts";
import { errorResponse, json, readJsonBody } from "./http-response.ts";
import type { ApiRoute } from "./sites.ts";

/** 10,000 site bodies with devices and routes, with room to spare. */
export const ONBOARDING_JOB_MAX_BODY_BYTES = 32 * 1024 * 1024;

export const ONBOARDING_ROUTES: ApiRoute[] = [
  {
    name: "onboarding-jobs-create",
    method: "POST",
    route: "onboarding-jobs",
    // A job takes up to 10,000 sites (ADR 0024): a few MiB of JSON, more than the default 1 MiB.
    maxBodyBytes: ONBOARDING_JOB_MAX_BODY_BYTES,
    handler: async (request, context) => {
      try {
        const rollout = await getRollout();
        return json(202, rollout.onboarding.submit(await readJsonBody(request)));
      } catch (err) {
        return errorResponse(err, context);
      }
    },
  },
  {
    name: "onboarding-jobs-get",
    method: "GET",
    route: "onboarding-jobs/{jobId}",
    handler: async (request, context) => {
      try {
        const jobId = request.params.jobId ?? "";
        const view = request.query.get("sites") ?? "all";
        if (!(JOB_SITES_VIEWS as readonly string[]).includes(view))
          throw new ValidationError("onboarding job query", [
            { path: "sites", message: `must be one of ${JOB_SITES_VIEWS.join(", ")}` },
          ]);
        const job = (await getRollout()).onboarding.get(jobId, { sites: view as JobSitesView });
        if (!job)
          throw new RelayFleetError(
            "RF_ERR_ROLLOUT_JOB_NOT_FOUND",
            `Onboarding job ${jobId.slice(0, 80)} is not known to this rollout instance (finished jobs are kept for a while; an instance that restarted forgets its jobs, ADR 0024).`,
          );
        return json(200, job);
      } catch (err) {
        return errorResponse(err, context);
      }
    },
  },
];

for (const r of ONBOARDING_ROUTES) {
  app.http(r.name, { methods: [r.method], route: r.route, authLevel: "function", handler: r.handler });
}
