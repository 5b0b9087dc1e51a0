import assert from "node:assert/strict";
import { test } from "node:test";
import { setRollout } from "../../cloud/functions/src/config.ts";
import { startRolloutHttpServer } from "../../cloud/functions/src/http-server.ts";
import { MODULE_ID } from "../../cloud/functions/src/rollout/index.ts";
import { waitFor } from "../helpers/index.ts";
import { startRolloutEnv } from "../helpers/rollout-env.ts";

test("HTTP API: auth, validation, 404/409, lifecycle, and DeviceCreated/DeviceDeleted events", async (t) => {
  const server = await startRolloutHttpServer(undefined);
  t.after(() => server.close());
  const env = await startRolloutEnv(t, { eventGridWebhook: server.eventGridUrl });
  setRollout(env.rollout);
  const call = async (
    method: string,
    path: string,
    body?: unknown,
    key: string | null = server.functionKey,
  ) => {
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: { ...(key ? { "x-functions-key": key } : {}), "content-type": "application/json" },
      ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
    });
    const text = await res.text();
    // biome-ignore lint/suspicious/noExplicitAny: the test reads JSON answers loosely
    return { status: res.status, body: text ? (JSON.parse(text) as Record<string, any>) : undefined };
  };

  assert.equal((await call("GET", "/api/sites", undefined, null)).status, 401);
  assert.equal((await call("GET", "/api/sites", undefined, "wrong")).status, 401);

  let r = await call("POST", "/api/sites", "{not json");
  assert.equal(r.status, 400);
  assert.equal(r.body?.error.code, "RF_ERR_ROLLOUT_INVALID");
  r = await call("POST", "/api/sites", { siteId: "Bad_Id" });
  assert.equal(r.status, 400);
  assert.equal(r.body?.error.issues[0].path, "siteId");
  r = await call("POST", "/api/sites", { siteId: "ok", mappings: { rdp: { target: "nohost" } } });
  assert.equal(r.status, 400);
  assert.equal(r.body?.error.issues[0].path, "mappings.rdp.target");
  assert.match(r.body?.error.message, /mappings\.rdp\.target: must be host:port/);
  r = await call("POST", "/api/sites", { siteId: "ok", extra: 1 });
  assert.equal(r.status, 400);
  r = await call("POST", "/api/sites", { siteId: "ok", profile: "nope" });
  assert.equal(r.status, 400);
  assert.equal(r.body?.error.code, "RF_ERR_ROLLOUT_UNKNOWN_PROFILE");

  for (const [method, path] of [
    ["GET", "/api/sites/ghost"],
    ["DELETE", "/api/sites/ghost"],
    ["DELETE", "/api/sites/ghost/mappings/x"],
    ["POST", "/api/sites/ghost/rotate-keys"],
  ] as const) {
    r = await call(method, path);
    assert.equal(r.status, 404, `${method} ${path}`);
    assert.equal(r.body?.error.code, "RF_ERR_ROLLOUT_SITE_NOT_FOUND");
  }
  r = await call("PUT", "/api/sites/ghost/mappings/x", { target: "10.0.0.1:22" });
  assert.equal(r.status, 404);
  assert.equal((await call("GET", "/api/nothing")).status, 404);
  assert.equal((await call("PATCH", "/api/sites")).status, 405);

  r = await call("POST", "/api/sites", { siteId: "web-1", mappings: { web: { target: "10.0.0.9:443" } } });
  assert.equal(r.status, 201);
  assert.equal(typeof r.body?.mappings.web.publicPort, "number");
  assert.equal(JSON.stringify(r.body).includes("Key"), false, "no key in API answers");
  assert.equal(
    (await call("POST", "/api/sites", { siteId: "web-1", mappings: { web: { target: "10.0.0.9:443" } } }))
      .status,
    200,
  );
  r = await call("POST", "/api/sites", { siteId: "web-1", mappings: { web: { target: "10.0.0.9:444" } } });
  assert.equal(r.status, 409);
  r = await call("PUT", "/api/sites/web-1/mappings/ssh", {
    target: "10.0.0.9:22",
    public: { kind: "tcp", port: r.body ? 43000 : 0 },
  });
  assert.ok(r.status === 200 || r.status === 409, "explicit port allocated or taken");
  r = await call("PUT", "/api/sites/web-1/mappings/bad.name", { target: "10.0.0.9:22" });
  assert.equal(r.status, 400);
  r = await call("PUT", "/api/sites/web-1/mappings/x", { target: "10.0.0.9:22", maxConnections: -1 });
  assert.equal(r.status, 400);
  assert.equal(r.body?.error.issues[0].path, "maxConnections");
  r = await call("GET", "/api/sites");
  assert.equal(r.body?.count, 1);
  r = await call("GET", "/api/sites/web-1");
  assert.equal(r.body?.siteId, "web-1");

  // A second device joins the site (ADR 0014): 201, then 200; bad bodies and ids are 400s.
  r = await call("POST", "/api/sites/web-1/devices", { deviceId: "web-1b" });
  assert.equal(r.status, 201);
  assert.deepEqual(
    r.body?.devices.map((d: { deviceId: string }) => d.deviceId),
    ["web-1", "web-1b"],
  );
  assert.equal((await call("POST", "/api/sites/web-1/devices", { deviceId: "web-1b" })).status, 200);
  r = await call("POST", "/api/sites/web-1/devices", { deviceId: "no spaces" });
  assert.equal(r.status, 400);
  assert.equal(r.body?.error.issues[0].path, "deviceId");
  assert.equal(await env.deps.hub.getDevice("no spaces"), undefined);
  assert.equal((await call("POST", "/api/sites/ghost/devices", {})).status, 404);
  r = await call("GET", "/api/sites/web-1/devices");
  assert.equal(r.status, 200);
  assert.equal(r.body?.count, 2);
  assert.equal(r.body?.devices[1].module.deviceId, "web-1b", "each device with its own module state");
  assert.equal((await call("DELETE", "/api/sites/web-1/devices/ghost")).status, 404);
  r = await call("DELETE", "/api/sites/web-1/devices/web-1b?deleteDevice=true");
  assert.equal(r.status, 200);
  assert.equal(r.body?.devices.length, 1);
  assert.equal(await env.deps.hub.getDevice("web-1b"), undefined);
  r = await call("DELETE", "/api/sites/web-1/devices/web-1");
  assert.equal(r.status, 409);
  assert.equal(r.body?.error.code, "RF_ERR_ROLLOUT_LAST_DEVICE");

  // A device provisioned with the relay tag comes online with no human step.
  env.hubEmulator.provisionDevice("edge-77", {
    iotEdge: true,
    tags: { relayFleet: { siteId: "auto-77", profile: "single" } },
  });
  env.hubEmulator.provisionDevice("untagged", { iotEdge: true });
  const auto = await waitFor(() => env.deps.ledger.getSite("auto-77"), "tagged device onboarded");
  assert.equal(auto.deviceId, "edge-77");
  // The site row is written before the ports and the twin: wait for the onboarding to finish.
  const twin = await waitFor(async () => {
    const t = await env.deps.hub.getModuleTwin("edge-77", MODULE_ID);
    return t?.desired.mappings ? t : undefined;
  }, "tagged device's module twin written");
  assert.deepEqual(Object.keys(twin?.desired.mappings as object), ["app"]);
  assert.equal(await env.deps.ledger.getSite("untagged"), undefined);

  // A second device created with the same site's tag joins the site through its own event.
  env.hubEmulator.provisionDevice("edge-77b", {
    iotEdge: true,
    tags: { relayFleet: { siteId: "auto-77", profile: "single" } },
  });
  await waitFor(async () => {
    const t = await env.deps.hub.getModuleTwin("edge-77b", MODULE_ID);
    return t?.desired.mappings ? t : undefined;
  }, "the joining device's module twin written");
  assert.deepEqual(
    (await env.rollout.getSite("auto-77")).devices.map((d) => d.deviceId),
    ["edge-77", "edge-77b"],
  );

  // Deleting one device keeps the site on the other; deleting the last offboards it.
  await env.deps.hub.deleteDevice("edge-77");
  await waitFor(
    async () => (await env.rollout.getSite("auto-77")).devices.length === 1,
    "the deleted device left its site",
  );
  await env.deps.hub.deleteDevice("edge-77b");
  await waitFor(async () => (await env.deps.ledger.getSite("auto-77")) === undefined, "site offboarded");
  assert.equal((await env.deps.ledger.listRoutes({ siteId: "auto-77" })).length, 0);

  // Event Grid subscription validation handshake.
  const v = await fetch(server.eventGridUrl, {
    method: "POST",
    headers: { "aeg-event-type": "SubscriptionValidation" },
    body: JSON.stringify([
      { eventType: "Microsoft.EventGrid.SubscriptionValidationEvent", data: { validationCode: "abc" } },
    ]),
  });
  assert.deepEqual(await v.json(), { validationResponse: "abc" });
  const bad = await fetch(server.eventGridUrl, { method: "POST", body: "][" });
  assert.equal(bad.status, 400);

  r = await call("DELETE", "/api/sites/web-1?deleteDevice=true");
  assert.equal(r.status, 200);
  assert.equal((await call("GET", "/api/sites")).body?.count, 0);
});

test("HTTP API errors say what happened: 413, bad path ids, bad CIDRs, 409 on add, storage down is a prompt 503", async (t) => {
  const env = await startRolloutEnv(t);
  const server = await startRolloutHttpServer(env.rollout);
  t.after(() => server.close());
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: { "x-functions-key": server.functionKey, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
    });
    const text = await res.text();
    // biome-ignore lint/suspicious/noExplicitAny: the test reads JSON answers loosely
    return { status: res.status, body: text ? (JSON.parse(text) as Record<string, any>) : undefined };
  };
  let r = await call("POST", "/api/sites", { siteId: "e1", profile: "single" });
  assert.equal(r.status, 201);

  // Over 1 MiB: a 413 the client can read, not a reset; the connection stays usable.
  r = await call(
    "PUT",
    "/api/sites/e1/mappings/big",
    `{"target":"10.0.0.1:22","pad":"${"x".repeat(2 * 1024 * 1024)}"}`,
  );
  assert.equal(r.status, 413);
  assert.equal(r.body?.error.code, "RF_ERR_ROLLOUT_BODY_TOO_LARGE");
  assert.equal((await call("GET", "/api/sites/e1")).status, 200);
  // An onboarding job takes up to 10,000 sites, more than 1 MiB: read and checked (here refused
  // for its unknown field with a 400 naming it), not cut off at the default limit.
  r = await call("POST", "/api/onboarding-jobs", `{"sites":[],"pad":"${"x".repeat(2 * 1024 * 1024)}"}`);
  assert.equal(r.status, 400, JSON.stringify(r.body).slice(0, 300));
  assert.notEqual(r.body?.error.code, "RF_ERR_ROLLOUT_BODY_TOO_LARGE");

  // A path id that is no site id: 400 with a message, not a 500.
  r = await call("GET", "/api/sites/..%2F..%2Fstatus");
  assert.equal(r.status, 400);
  assert.equal(r.body?.error.code, "RF_ERR_ROLLOUT_INVALID");
  assert.match(r.body?.error.message, /site id/);
  r = await call("PUT", "/api/sites/e1/mappings/..%2Fx", { target: "10.0.0.1:22" });
  assert.equal(r.status, 400);

  // Source CIDRs are checked where they are written.
  for (const cidr of ["10.0.0.0/33", "300.1.1.1/8", "not-a-cidr"]) {
    r = await call("POST", "/api/sites/e1/mappings/ssh", {
      target: "10.0.0.5:22",
      allowCidrs: ["10.0.0.0/8", cidr],
    });
    assert.equal(r.status, 400, cidr);
    assert.equal(r.body?.error.issues[0].path, "allowCidrs.1", cidr);
    assert.equal(r.body?.error.outcome, undefined);
  }
  assert.deepEqual(
    Object.keys((await call("GET", "/api/sites/e1")).body?.mappings),
    ["app"],
    "nothing saved",
  );

  // Add, add again (409), update one field, replace whole.
  r = await call("POST", "/api/sites/e1/mappings/ssh", { target: "10.0.0.5:22", allowCidrs: ["10.0.0.0/8"] });
  assert.equal(r.status, 201);
  r = await call("POST", "/api/sites/e1/mappings/ssh", { target: "10.0.0.6:22" });
  assert.equal(r.status, 409);
  assert.equal(r.body?.error.code, "RF_ERR_ROLLOUT_MAPPING_EXISTS");
  assert.match(r.body?.error.message, /PATCH/);
  r = await call("PATCH", "/api/sites/e1/mappings/ssh", { target: "10.0.0.6:22" });
  assert.equal(r.status, 200);
  assert.deepEqual(r.body?.mappings.ssh.allowCidrs, ["10.0.0.0/8"], "update keeps what it was not given");
  r = await call("PATCH", "/api/sites/e1/mappings/ssh", { public: { kind: "tcp", port: 1 } });
  assert.equal(r.status, 400);
  assert.equal(r.body?.error.outcome, "nothing-changed");

  // A ledger row the gateway cannot use (written by hand or by an older version) shows as drift.
  const route = (await env.deps.ledger.listRoutes({ siteId: "e1" })).find((x) => x.portName === "ssh");
  assert.ok(route);
  await env.deps.ledger.updateRoute({ ...route, allowCidrs: ["10.0.0.0/33"] });
  r = await call("GET", "/api/status");
  const sites = (r.body?.sites ?? []) as Array<{ siteId: string; drift: string[] }>;
  const e1 = sites.find((s) => s.siteId === "e1");
  assert.ok(
    e1?.drift.some((d) => d.includes(route.rowKey) && d.includes("10.0.0.0/33")),
    `drift names the row: ${JSON.stringify(e1?.drift)}`,
  );

  // Storage down: a prompt 503 whose code names storage.
  await env.azurite.close();
  const started = Date.now();
  r = await call("GET", "/api/sites/e1");
  const took = Date.now() - started;
  assert.equal(r.status, 503);
  assert.equal(r.body?.error.code, "RF_ERR_LEDGER_STORAGE_UNAVAILABLE");
  assert.ok(took < 3000, `answered in ${took} ms`);
  r = await call("PATCH", "/api/sites/e1/mappings/ssh", { maxConnections: 5 });
  assert.equal(r.status, 503);
  assert.equal(r.body?.error.code, "RF_ERR_LEDGER_STORAGE_UNAVAILABLE");
});
