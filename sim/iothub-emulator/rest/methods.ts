/**
 * `POST /twins/{d}[/modules/{m}]/methods`: direct method invocation. 404 DeviceNotFound /
 * ModuleNotFound for unknown identities, 404 DeviceNotOnline when not connected, 504 on timeout.
 */
import { parseMethodCall } from "../mqtt/methods.ts";
import { type Route, route, SEG } from "./router.ts";

export const methodRoutes: Route[] = [
  route("POST", `/twins/${SEG}/methods`, async (ctx, req) => {
    const deviceId = req.params[0]!;
    ctx.hub.device(deviceId);
    const call = parseMethodCall(req.body);
    return { status: 200, body: { ...(await ctx.methods.invoke(deviceId, undefined, call)) } };
  }),
  route("POST", `/twins/${SEG}/modules/${SEG}/methods`, async (ctx, req) => {
    const [deviceId, moduleId] = [req.params[0]!, req.params[1]!];
    ctx.hub.module(deviceId, moduleId);
    const call = parseMethodCall(req.body);
    return { status: 200, body: { ...(await ctx.methods.invoke(deviceId, moduleId, call)) } };
  }),
];
