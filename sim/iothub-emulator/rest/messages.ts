/**
 * `GET /emulator/messages/events`: the device-to-cloud messages the emulator kept (the last 1,000),
 * oldest first, each in the JSON shape IoT Hub's routing writes to storage (`routedMessage`).
 *
 * Emulator-only, under its own `/emulator/` prefix: IoT Hub has no REST call that reads
 * device-to-cloud messages. A deployed hub hands them on through its Event Hubs-compatible
 * endpoint (AMQP, a consumer group) or, as this project's template does, a route to a storage
 * container; docs/audit.md describes that production path. The service SAS (any hub policy) or
 * an Entra ID principal with IoT Hub Data Contributor may read here.
 *
 * Query: `deviceId`, `moduleId`, `property=<name>:<value>` (an application property, e.g.
 * `relayFleetType:audit`), `since` (ISO time, enqueued at or after) and `top` (the newest N,
 * 1–1000). A bad parameter is a 400 `ArgumentInvalid` naming it.
 */
import { hubErrors } from "../errors.ts";
import { routedMessage } from "../telemetry.ts";
import { type Route, route } from "./router.ts";

const MAX_TOP = 1000;

function parseQuery(q: URLSearchParams) {
  const known = new Set(["deviceId", "moduleId", "property", "since", "top", "api-version"]);
  for (const name of q.keys())
    if (!known.has(name)) throw hubErrors.badRequest(`unknown query parameter '${name.slice(0, 40)}'`);
  const sinceText = q.get("since");
  let since: number | undefined;
  if (sinceText !== null) {
    since = Date.parse(sinceText);
    if (!/^\d{4}-\d{2}-\d{2}T/.test(sinceText) || Number.isNaN(since))
      throw hubErrors.badRequest("since must be an ISO 8601 time such as 2026-12-01T22:00:00Z");
  }
  const topText = q.get("top");
  const top = topText === null ? MAX_TOP : Number(topText);
  if (!Number.isInteger(top) || top < 1 || top > MAX_TOP)
    throw hubErrors.badRequest(`top must be an integer from 1 to ${MAX_TOP}`);
  const propertyText = q.get("property");
  let property: { name: string; value: string } | undefined;
  if (propertyText !== null) {
    const colon = propertyText.indexOf(":");
    if (colon < 1) throw hubErrors.badRequest("property must be <name>:<value>");
    property = { name: propertyText.slice(0, colon), value: propertyText.slice(colon + 1) };
  }
  return {
    deviceId: q.get("deviceId") ?? undefined,
    moduleId: q.get("moduleId") ?? undefined,
    property,
    since,
    top,
  };
}

export const emulatorMessageRoutes: Route[] = [
  route("GET", "/emulator/messages/events", (ctx, req) => {
    const q = parseQuery(req.query);
    const filter = {
      ...(q.deviceId === undefined ? {} : { deviceId: q.deviceId }),
      ...(q.moduleId === undefined ? {} : { moduleId: q.moduleId }),
    };
    const kept = ctx.telemetry
      .list(filter)
      .filter(
        (m) =>
          (q.since === undefined || m.receivedAt >= q.since) &&
          (q.property === undefined || m.properties[q.property.name] === q.property.value),
      );
    return { status: 200, body: kept.slice(-q.top).map((m) => ({ ...routedMessage(m) })) };
  }),
];
