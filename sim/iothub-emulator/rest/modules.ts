/** `/devices/{d}/modules[/{m}]`: module identity CRUD (Registry.addModule/updateModule/…). */
import { type Route, route, SEG } from "./router.ts";

export const moduleRoutes: Route[] = [
  route("GET", `/devices/${SEG}/modules`, (ctx, req) => ({
    status: 200,
    body: ctx.hub.listModules(req.params[0]!),
  })),
  route("GET", `/devices/${SEG}/modules/${SEG}`, (ctx, req) => ({
    status: 200,
    body: ctx.hub.getModule(req.params[0]!, req.params[1]!),
  })),
  route("PUT", `/devices/${SEG}/modules/${SEG}`, (ctx, req) => {
    const { module } = ctx.hub.putModule(req.params[0]!, req.params[1]!, req.body, req.ifMatch);
    return { status: 200, body: module };
  }),
  route("DELETE", `/devices/${SEG}/modules/${SEG}`, (ctx, req) => {
    ctx.hub.deleteModule(req.params[0]!, req.params[1]!, req.ifMatch);
    return { status: 204 };
  }),
];
