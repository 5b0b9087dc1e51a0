/** The status page's data: gateway metrics parsed per route, sites joined with twins, search and paging. */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { ModuleTwinView } from "../../cloud/functions/src/rollout/hub.ts";
import type { SiteView } from "../../cloud/functions/src/rollout/service.ts";
import { buildFleetView, cachedView, pageOfSites } from "../../cloud/functions/src/status-page/fleet-view.ts";
import {
  addGatewayMetrics,
  type RouteTraffic,
} from "../../cloud/functions/src/status-page/gateway-metrics.ts";
import { statusPageHtml } from "../../cloud/functions/src/status-page/page.ts";

const METRICS = `# HELP gateway_connections_active Open client connections
# TYPE gateway_connections_active gauge
gateway_connections_active{route="20001"} 2
gateway_connections_active{route="443:app.example.test"} 1
gateway_bytes_total{route="20001",direction="in"} 100
gateway_bytes_total{route="20001",direction="out"} 2000
gateway_connections_refused_total{route="20001",reason="allowlist"} 3
gateway_connections_refused_total{route="20001",reason="rate_limited"} 0
gateway_tunnel_setup_seconds_bucket{le="0.005",route="20001"} 1
garbage line {route="x"} NaN
`;

function site(siteId: string, mappings: SiteView["mappings"], profile = "default"): SiteView {
  return {
    siteId,
    deviceId: siteId,
    devices: [{ deviceId: siteId }],
    profile,
    hybridConnection: `site-${siteId}`,
    relayEndpoint: "sb://x/",
    createdAt: "",
    publicPorts: [],
    mappings,
  };
}

function twin(siteId: string, connected: boolean): ModuleTwinView {
  return {
    deviceId: siteId,
    moduleId: "relayListener",
    desired: { relay: { hybridConnection: `site-${siteId}` }, mappings: { web: {} } },
    reported: {
      appliedDesiredVersion: 2,
      status: "running",
      relay: { status: "online", listeners: [{ status: "online" }, { status: "reconnecting" }] },
      mappings: { web: { state: "active", activeConnections: 0, lastError: null } },
      errors: [],
    },
    desiredVersion: 2,
    connectionState: connected ? "Connected" : "Disconnected",
    lastActivityTime: "2026-01-01T00:00:00Z",
  };
}

test("gateway metrics are summed per route over gateways; other lines are ignored", () => {
  const routes = new Map<string, RouteTraffic>();
  addGatewayMetrics(METRICS, routes);
  addGatewayMetrics(METRICS, routes);
  assert.deepEqual(routes.get("20001"), {
    activeConnections: 4,
    bytesIn: 200,
    bytesOut: 4000,
    refusals: { allowlist: 6 },
  });
  assert.equal(routes.get("443:app.example.test")?.activeConnections, 2);
  assert.equal(routes.size, 2);
});

test("sites join their twins and traffic: devices, listeners, public ports, refusals, health", () => {
  const routes = new Map<string, RouteTraffic>();
  addGatewayMetrics(METRICS, routes);
  const view = buildFleetView(
    [
      site("a", { web: { target: "10.0.0.1:80", enabled: true, publicPort: 20001 } as never }),
      site("b", {
        app: {
          target: "10.0.0.2:443",
          enabled: true,
          publicPort: 443,
          publicHost: "app.example.test",
        } as never,
      }),
      site("c", {}),
    ],
    [twin("a", true), twin("b", false)],
    { gateways: 2, gatewaysUp: 1, routes },
  );
  const [a, b, c] = view.sites;
  assert.equal(a?.health, "ok");
  assert.equal(a?.devices[0]?.online, true);
  assert.equal(a?.devices[0]?.listenersOnline, 1);
  assert.equal(a?.devices[0]?.listeners, 2);
  assert.equal(a?.mappings[0]?.publicPort, 20001);
  assert.equal(a?.mappings[0]?.state, "active");
  assert.equal(a?.activeConnections, 2);
  assert.deepEqual(a?.refusals, { allowlist: 3 });
  assert.equal(b?.health, "offline", "IoT Hub sees the module disconnected");
  assert.equal(b?.mappings[0]?.activeConnections, 1, "host routes match by port:host");
  assert.equal(c?.health, "offline");
  assert.ok(c?.drift.includes("no module twin"));
  assert.deepEqual(
    { sites: view.summary.sites, ok: view.summary.sitesOk, up: view.summary.gatewaysUp },
    { sites: 3, ok: 1, up: 1 },
  );
});

test("search by site id, tag or health, and pages bounded in size", () => {
  const sites = Array.from({ length: 1000 }, (_, i) =>
    site(`site-${String(i).padStart(4, "0")}`, {}, i % 10 === 0 ? "line-a" : "default"),
  );
  const view = buildFleetView(sites, [], { gateways: 0, gatewaysUp: 0, routes: new Map() });
  const first = pageOfSites(view, "", 1, 50);
  assert.equal(first.total, 1000);
  assert.equal(first.pages, 20);
  assert.equal(first.sites.length, 50);
  assert.equal(first.sites[0]?.siteId, "site-0000");
  const last = pageOfSites(view, "", 99, 50);
  assert.equal(last.page, 20, "a page past the end is the last page");
  assert.equal(last.sites.at(-1)?.siteId, "site-0999");
  assert.equal(pageOfSites(view, "SITE-0042", 1, 50).total, 1);
  assert.equal(pageOfSites(view, "line-a", 1, 50).total, 100);
  assert.equal(pageOfSites(view, "health:offline line-a", 1, 50).total, 100);
  assert.equal(pageOfSites(view, "health:ok", 1, 50).total, 0);
  assert.equal(pageOfSites(view, "", 1, 1_000_000).pageSize, 1000);
});

test("the cached view is computed once per interval and a failure is not kept", async () => {
  let calls = 0;
  const get = cachedView(async () => {
    calls++;
    if (calls === 1) throw new Error("hub down");
    return buildFleetView([], [], { gateways: 0, gatewaysUp: 0, routes: new Map() });
  }, 60_000);
  await assert.rejects(get(), /hub down/);
  await Promise.all([get(), get(), get()]);
  assert.equal(calls, 2);
});

test("the page carries its nonce on the only script and style, and renders data as text", () => {
  const html = statusPageHtml("n0nce");
  assert.equal(html.match(/<script nonce="n0nce">/g)?.length, 1);
  assert.equal(html.match(/<style nonce="n0nce">/g)?.length, 1);
  assert.doesNotMatch(html, /innerHTML/, "data never becomes markup");
  assert.match(html, /<html lang="en">/);
  assert.match(html, /<label for="q">/);
});

test("a site of several devices: a device row each, a device without a module twin is drift, every device id is a search tag", () => {
  const s = { ...site("r", {}), devices: [{ deviceId: "r" }, { deviceId: "r.2" }, { deviceId: "r.3" }] };
  const second = { ...twin("r", false), deviceId: "r.2" };
  const view = buildFleetView([s], [twin("r", true), second], {
    gateways: 0,
    gatewaysUp: 0,
    routes: new Map(),
  });
  const [row] = view.sites;
  assert.deepEqual(
    row?.devices.map((d) => [d.deviceId, d.online]),
    [
      ["r", true],
      ["r.2", false],
    ],
  );
  assert.equal(row?.health, "degraded", "one device of the pair is offline");
  assert.ok(row?.drift.includes("r.3: no module twin"));
  assert.equal(pageOfSites(view, "r.3", 1, 50).total, 1);
});

test("a device's deployment state comes from its $edgeAgent twin once the agent has reported", () => {
  const agent = (deviceId: string, runtimeStatus: string): ModuleTwinView => ({
    deviceId,
    moduleId: "$edgeAgent",
    desired: {},
    reported: {
      lastDesiredVersion: 3,
      lastDesiredStatus: { code: 200 },
      modules: {
        relayListener: { runtimeStatus, settings: { image: "registry.example/relay-listener:1.2.0" } },
      },
    },
    desiredVersion: 3,
  });
  const traffic = { gateways: 0, gatewaysUp: 0, routes: new Map<string, RouteTraffic>() };
  const sites = [site("a", {}), site("b", {}), site("c", {})];
  const twins = [twin("a", true), twin("b", true), twin("c", true)];
  const view = buildFleetView(sites, twins, traffic, new Date(), [
    agent("a", "running"),
    agent("b", "backoff"),
  ]);
  const [a, b, c] = view.sites;
  assert.equal(a?.devices[0]?.deployment, "running");
  assert.equal(a?.devices[0]?.image, "registry.example/relay-listener:1.2.0");
  assert.equal(b?.devices[0]?.deployment, "backoff");
  assert.ok(
    b?.drift.some((d) => /relayListener backoff on the device/.test(d)),
    "shown as drift too",
  );
  assert.equal(b?.health, "degraded");
  assert.equal(c?.devices[0]?.deployment, "running", "no agent report yet: the module's own word");
  assert.equal(c?.devices[0]?.image, undefined);
});
