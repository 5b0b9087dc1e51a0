/** `/devices[/{id}]`: device identity CRUD (Registry.create/update/get/list/delete). */
import { type Route, route, SEG } from "./router.ts";

export const deviceRoutes: Route[] = [
  route("GET", "/devices", (ctx) => ({ status: 200, body: ctx.hub.listDevices() })),
  route("GET", `/devices/${SEG}`, (ctx, req) => ({ status: 200, body: ctx.hub.getDevice(req.params[0]!) })),
  route("PUT", `/devices/${SEG}`, (ctx, req) => {
    const { device } = ctx.hub.putDevice(req.params[0]!, req.body, req.ifMatch);
    return { status: 200, body: device };
  }),
  route("DELETE", `/devices/${SEG}`, (ctx, req) => {
    ctx.hub.deleteDevice(req.params[0]!, req.ifMatch);
    return { status: 204 };
  }),
];
