/** `/configurations[/{id}]` CRUD and `POST /devices/{d}/applyConfigurationContent` (204). */
import { type Route, route, SEG } from "./router.ts";

export const configurationRoutes: Route[] = [
  route("GET", "/configurations", (ctx) => ({ status: 200, body: ctx.configurations.list() })),
  route("GET", `/configurations/${SEG}`, (ctx, req) => ({
    status: 200,
    body: ctx.configurations.get(req.params[0]!),
  })),
  route("PUT", `/configurations/${SEG}`, (ctx, req) => ({
    status: 200,
    body: ctx.configurations.put(req.params[0]!, req.body, req.ifMatch),
  })),
  route("DELETE", `/configurations/${SEG}`, (ctx, req) => {
    ctx.configurations.delete(req.params[0]!, req.ifMatch);
    return { status: 204 };
  }),
  route("POST", `/devices/${SEG}/applyConfigurationContent`, (ctx, req) => {
    ctx.configurations.applyContent(req.params[0]!, req.body);
    return { status: 204 };
  }),
];
