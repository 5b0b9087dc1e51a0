/**
 * The rollout HTTP API as Azure Functions (v4 programming model). Handlers are thin: parse,
 * call the rollout service, shape the answer. `ROUTES` is the single list the Functions
 * registration and the in-process simulation server both use.
 */
import { app, type HttpHandler, type HttpRequest, type InvocationContext } from "@azure/functions";
import { getRollout } from "../config.ts";
import { errorResponse, json, readJsonBody } from "./http-response.ts";

type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

export interface ApiRoute {
  name: string;
  method: Method;
  /** Functions route template (under the `/api` prefix of host.json). */
  route: string;
  handler: HttpHandler;
  /**
   * Largest body the local server (serve-local.ts) reads for this route; default 1 MiB. The
   * Functions host itself allows 100 MB: only a route that takes lists needs more here.
   */
  maxBodyBytes?: number;
}

function guarded(
  fn: (request: HttpRequest, context: InvocationContext) => Promise<{ status: number; body: unknown }>,
): HttpHandler {
  return async (request, context) => {
    try {
      const { status, body } = await fn(request, context);
      return status === 204 ? { status } : json(status, body);
    } catch (err) {
      return errorResponse(err, context);
    }
  };
}

const param = (request: HttpRequest, name: string) => request.params[name] ?? "";

export const ROUTES: ApiRoute[] = [
  {
    name: "sites-create",
    method: "POST",
    route: "sites",
    handler: guarded(async (request) => {
      const rollout = await getRollout();
      const result = await rollout.createSite(await readJsonBody(request));
      return { status: result.created ? 201 : 200, body: result.site };
    }),
  },
  {
    name: "sites-list",
    method: "GET",
    route: "sites",
    handler: guarded(async () => {
      const sites = await (await getRollout()).listSites();
      return { status: 200, body: { count: sites.length, sites } };
    }),
  },
  {
    name: "sites-get",
    method: "GET",
    route: "sites/{id}",
    handler: guarded(async (request) => ({
      status: 200,
      body: await (await getRollout()).getSite(param(request, "id")),
    })),
  },
  {
    name: "sites-delete",
    method: "DELETE",
    route: "sites/{id}",
    handler: guarded(async (request) => {
      const deleteDevice = request.query.get("deleteDevice") === "true";
      return {
        status: 200,
        body: await (await getRollout()).removeSite(param(request, "id"), { deleteDevice }),
      };
    }),
  },
  {
    name: "mappings-add",
    method: "POST",
    route: "sites/{id}/mappings/{name}",
    handler: guarded(async (request) => {
      const rollout = await getRollout();
      const site = await rollout.addMapping(
        param(request, "id"),
        param(request, "name"),
        await readJsonBody(request),
      );
      return { status: 201, body: site };
    }),
  },
  {
    name: "mappings-update",
    method: "PATCH",
    route: "sites/{id}/mappings/{name}",
    handler: guarded(async (request) => {
      const rollout = await getRollout();
      const site = await rollout.updateMapping(
        param(request, "id"),
        param(request, "name"),
        await readJsonBody(request),
      );
      return { status: 200, body: site };
    }),
  },
  {
    // Replaces the mapping whole (creates it when absent): fields left out take their defaults.
    name: "mappings-put",
    method: "PUT",
    route: "sites/{id}/mappings/{name}",
    handler: guarded(async (request) => {
      const rollout = await getRollout();
      const site = await rollout.putMapping(
        param(request, "id"),
        param(request, "name"),
        await readJsonBody(request),
      );
      return { status: 200, body: site };
    }),
  },
  {
    name: "mappings-delete",
    method: "DELETE",
    route: "sites/{id}/mappings/{name}",
    handler: guarded(async (request) => ({
      status: 200,
      body: await (await getRollout()).deleteMapping(param(request, "id"), param(request, "name")),
    })),
  },
  {
    name: "sites-rotate-keys",
    method: "POST",
    route: "sites/{id}/rotate-keys",
    handler: guarded(async (request) => ({
      status: 200,
      body: await (await getRollout()).rotateKeys(param(request, "id")),
    })),
  },
  {
    // To another relay namespace (body `{ namespace }`), keeping the site's public ports.
    name: "sites-move",
    method: "POST",
    route: "sites/{id}/move",
    handler: guarded(async (request) => ({
      status: 200,
      body: await (await getRollout()).moveSite(param(request, "id"), await readJsonBody(request)),
    })),
  },
  {
    // Each relay namespace's sites and connections against its quota.
    name: "relay-namespaces",
    method: "GET",
    route: "relay-namespaces",
    handler: guarded(async () => {
      const namespaces = await (await getRollout()).relayNamespaces();
      return { status: 200, body: { count: namespaces.length, namespaces } };
    }),
  },
  {
    // A device joins the site (body `{ deviceId? }`): 201, or 200 when it already belongs to it.
    name: "devices-add",
    method: "POST",
    route: "sites/{id}/devices",
    handler: guarded(async (request) => {
      const rollout = await getRollout();
      const result = await rollout.addDevice(param(request, "id"), await readJsonBody(request));
      return { status: result.created ? 201 : 200, body: result.site };
    }),
  },
  {
    // Each device of the site with its module's state from its own twin.
    name: "devices-list",
    method: "GET",
    route: "sites/{id}/devices",
    handler: guarded(async (request) => {
      const site = await (await getRollout()).getSite(param(request, "id"));
      return {
        status: 200,
        body: { siteId: site.siteId, count: site.devices.length, devices: site.devices },
      };
    }),
  },
  {
    name: "devices-remove",
    method: "DELETE",
    route: "sites/{id}/devices/{deviceId}",
    handler: guarded(async (request) => {
      const deleteDevice = request.query.get("deleteDevice") === "true";
      return {
        status: 200,
        body: await (await getRollout()).removeDevice(param(request, "id"), param(request, "deviceId"), {
          deleteDevice,
        }),
      };
    }),
  },
  {
    name: "fleet-status",
    method: "GET",
    route: "status",
    handler: guarded(async () => ({
      status: 200,
      body: await (await getRollout()).fleetView(),
    })),
  },
];

for (const r of ROUTES) {
  app.http(r.name, { methods: [r.method], route: r.route, authLevel: "function", handler: r.handler });
}
