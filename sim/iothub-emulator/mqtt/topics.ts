/** The IoT Hub MQTT topic names (iothub-protocol.md §1.2–1.4), built and parsed in one place. */
import { parse as parseQuery } from "node:querystring";

export const TWIN_RESPONSE_FILTER = "$iothub/twin/res/#";
export const DESIRED_FILTER = "$iothub/twin/PATCH/properties/desired/#";
export const METHODS_FILTER = "$iothub/methods/POST/#";

export function inputsFilter(deviceId: string, moduleId: string): string {
  return `devices/${deviceId}/modules/${moduleId}/inputs/#`;
}

export function c2dFilter(deviceId: string): string {
  return `devices/${deviceId}/messages/devicebound/#`;
}

/** The filters an identity may subscribe to; anything else is refused in SUBACK. */
export function allowedFilters(deviceId: string, moduleId: string | undefined): Set<string> {
  const filters = new Set([TWIN_RESPONSE_FILTER, DESIRED_FILTER, METHODS_FILTER]);
  if (moduleId === undefined) filters.add(c2dFilter(deviceId));
  else filters.add(inputsFilter(deviceId, moduleId));
  return filters;
}

/** Splits `path/?a=1&b=2` into the path and its query parameters. */
function splitQuery(topic: string): { path: string; query: Record<string, string> } {
  const q = topic.indexOf("?");
  const path = q < 0 ? topic : topic.slice(0, q);
  const query: Record<string, string> = {};
  if (q >= 0) {
    for (const [k, v] of Object.entries(parseQuery(topic.slice(q + 1)))) {
      if (typeof v === "string") query[k] = v;
      else if (Array.isArray(v) && v[0] !== undefined) query[k] = v[0];
    }
  }
  return { path, query };
}

export type ClientTopic =
  | { kind: "twin-get"; rid: string }
  | { kind: "twin-reported"; rid: string }
  | { kind: "method-response"; rid: string; status: number }
  | { kind: "telemetry"; deviceId: string; moduleId?: string; properties: Record<string, string> }
  | { kind: "unknown" };

/** Classifies a topic a client published to. */
export function parseClientTopic(topic: string): ClientTopic {
  if (topic.startsWith("$iothub/")) {
    const { path, query } = splitQuery(topic);
    const rid = query.$rid ?? "";
    if (path === "$iothub/twin/GET/" && rid) return { kind: "twin-get", rid };
    if (path === "$iothub/twin/PATCH/properties/reported/" && rid) return { kind: "twin-reported", rid };
    const m = /^\$iothub\/methods\/res\/(\d{1,3})\/$/.exec(path);
    if (m && rid) return { kind: "method-response", rid, status: Number(m[1]) };
    return { kind: "unknown" };
  }
  // devices/{d}/messages/events/{bag} or devices/{d}/modules/{m}/messages/events/{bag}[/]
  const t = /^devices\/([^/]+)\/(?:modules\/([^/]+)\/)?messages\/events\/(.*)$/.exec(topic);
  if (t) {
    const bag = (t[3] ?? "").replace(/\/$/, "");
    const properties: Record<string, string> = {};
    for (const [k, v] of Object.entries(parseQuery(bag))) {
      if (typeof v === "string") properties[k] = v;
      else if (Array.isArray(v) && v[0] !== undefined) properties[k] = v[0];
    }
    return {
      kind: "telemetry",
      deviceId: t[1] ?? "",
      ...(t[2] === undefined ? {} : { moduleId: t[2] }),
      properties,
    };
  }
  return { kind: "unknown" };
}

export const twinResponseTopic = (status: number, rid: string, version?: number) =>
  `$iothub/twin/res/${status}/?$rid=${rid}${version === undefined ? "" : `&$version=${version}`}`;

export const desiredPatchTopic = (version: number) =>
  `$iothub/twin/PATCH/properties/desired/?$version=${version}`;

export const methodRequestTopic = (methodName: string, rid: string) =>
  `$iothub/methods/POST/${methodName}/?$rid=${rid}`;
