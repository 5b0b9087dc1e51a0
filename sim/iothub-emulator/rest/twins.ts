/** `/twins/{d}[/modules/{m}]`: twin read, merge-patch (PATCH) and replace (PUT). */
import { type Route, route, SEG } from "./router.ts";

export const twinRoutes: Route[] = [
  route("GET", `/twins/${SEG}`, (ctx, req) => ({ status: 200, body: ctx.hub.getTwin(req.params[0]!) })),
  route("PATCH", `/twins/${SEG}`, (ctx, req) => ({
    status: 200,
    body: ctx.hub.updateTwin(req.params[0]!, undefined, req.body, req.ifMatch, "patch"),
  })),
  route("PUT", `/twins/${SEG}`, (ctx, req) => ({
    status: 200,
    body: ctx.hub.updateTwin(req.params[0]!, undefined, req.body, req.ifMatch, "replace"),
  })),
  route("GET", `/twins/${SEG}/modules/${SEG}`, (ctx, req) => ({
    status: 200,
    body: ctx.hub.getTwin(req.params[0]!, req.params[1]!),
  })),
  route("PATCH", `/twins/${SEG}/modules/${SEG}`, (ctx, req) => ({
    status: 200,
    body: ctx.hub.updateTwin(req.params[0]!, req.params[1]!, req.body, req.ifMatch, "patch"),
  })),
  route("PUT", `/twins/${SEG}/modules/${SEG}`, (ctx, req) => ({
    status: 200,
    body: ctx.hub.updateTwin(req.params[0]!, req.params[1]!, req.body, req.ifMatch, "replace"),
  })),
];
