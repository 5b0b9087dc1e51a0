/**
 * A rejected change leaves no trace (hardening issue, control path): every change is checked
 * whole before anything is written; one refused half way is rolled back; one whose backend fails
 * half way stays saved and reconcile completes it; every answer says which. Also: adding an
 * existing mapping is a 409, updating changes only the fields given, and a deleted device's
 * offboarding waits for the site's lock. Real Azurite, IoT Hub emulator and relay emulator.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { MODULE_ID, type Rollout } from "../../cloud/functions/src/rollout/index.ts";
import { RelayFleetError } from "../../lib/errors.ts";
import { sleep, waitFor } from "../helpers/index.ts";
import { type RolloutEnv, startRolloutEnv } from "../helpers/rollout-env.ts";

/** Everything a change could touch for a site: spec, routes, module twin version and mappings. */
async function footprint(env: RolloutEnv, siteId: string) {
  const row = await env.deps.ledger.getSite(siteId);
  const routes = (await env.deps.ledger.listRoutes())
    .map((r) => `${r.rowKey}=${r.siteId}/${r.portName}`)
    .sort();
  const twin = row ? await env.deps.hub.getModuleTwin(row.deviceId, MODULE_ID) : undefined;
  return {
    spec: row?.spec,
    routes,
    desiredVersion: twin?.desiredVersion,
    twinMappings: Object.keys((twin?.desired.mappings as object | undefined) ?? {}).sort(),
  };
}

type Failure = { code?: string; status?: number; outcome?: string; issues?: Array<{ path: string }> };

async function failure(p: Promise<unknown>): Promise<Failure> {
  try {
    await p;
  } catch (err) {
    return err as Failure;
  }
  assert.fail("the change was expected to be refused");
}

test("a refused change saves nothing, allocates nothing, writes no twin and never blocks the next", async (t) => {
  const env = await startRolloutEnv(t, { ranges: [{ from: 43000, to: 43099 }] });
  const r = env.rollout;
  await r.createSite({ siteId: "s1", profile: "single" });
  await r.createSite({
    siteId: "s2",
    mappings: { owner: { target: "127.0.0.1:22", public: { kind: "tcp", port: 43050 } } },
  });
  const before = await footprint(env, "s1");

  const refused: Array<[string, () => Promise<unknown>, Partial<Failure>, string?]> = [
    [
      "maxConnections over the twin's 10,000",
      () => r.putMapping("s1", "big", { target: "10.0.0.5:22", maxConnections: 50_000 }),
      { code: "RF_ERR_ROLLOUT_INVALID", status: 400 },
      "maxConnections",
    ],
    [
      "100,000 connections",
      () => r.addMapping("s1", "big", { target: "10.0.0.5:22", maxConnections: 100_000 }),
      { code: "RF_ERR_ROLLOUT_INVALID", status: 400 },
      "maxConnections",
    ],
    [
      "target a..b:22",
      () => r.addMapping("s1", "t1", { target: "a..b:22" }),
      { code: "RF_ERR_ROLLOUT_INVALID", status: 400 },
      "target",
    ],
    [
      "target :22",
      () => r.addMapping("s1", "t2", { target: ":22" }),
      { code: "RF_ERR_ROLLOUT_INVALID", status: 400 },
      "target",
    ],
    [
      "public port out of range",
      () => r.addMapping("s1", "p1", { target: "10.0.0.5:22", public: { kind: "tcp", port: 1234 } }),
      { code: "RF_ERR_LEDGER_PORT_OUT_OF_RANGE", status: 400, outcome: "nothing-changed" },
    ],
    [
      "public port taken by another site",
      () => r.addMapping("s1", "p2", { target: "10.0.0.5:22", public: { kind: "tcp", port: 43050 } }),
      { code: "RF_ERR_LEDGER_PORT_TAKEN", status: 409, outcome: "nothing-changed" },
    ],
    [
      "a bad source CIDR",
      () => r.addMapping("s1", "c1", { target: "10.0.0.5:22", allowCidrs: ["10.0.0.0/33"] }),
      { code: "RF_ERR_ROLLOUT_INVALID", status: 400 },
      "allowCidrs.0",
    ],
    [
      "removing a mapping that is not there",
      () => r.deleteMapping("s1", "nothere"),
      { code: "RF_ERR_ROLLOUT_MAPPING_NOT_FOUND", status: 404 },
    ],
  ];
  for (const [what, change, want, path] of refused) {
    const err = await failure(change());
    for (const [k, v] of Object.entries(want)) assert.equal(err[k as keyof Failure], v, `${what}: ${k}`);
    if (path) assert.equal(err.issues?.[0]?.path, path, `${what}: names the field`);
    assert.deepEqual(await footprint(env, "s1"), before, `${what}: nothing of it remains`);
  }
  // Two mappings asking for one port in one new site: refused before the site exists at all.
  const both = await failure(
    r.createSite({
      siteId: "s3",
      mappings: {
        a: { target: "10.0.0.1:22", public: { kind: "tcp", port: 43060 } },
        b: { target: "10.0.0.2:22", public: { kind: "tcp", port: 43060 } },
      },
    }),
  );
  assert.equal(both.status, 409);
  assert.equal(await env.deps.ledger.getSite("s3"), undefined, "no site row for a refused site");

  // The next change goes through.
  const site = await r.addMapping("s1", "ok", {
    target: "10.0.0.5:22",
    public: { kind: "tcp", port: 43070 },
  });
  assert.equal(site.mappings.ok?.publicPort, 43070);
  const after = await footprint(env, "s1");
  assert.deepEqual(after.twinMappings, ["app", "ok"]);

  // A port taken by a concurrent writer after the check: the change is refused at allocation and
  // rolled back (the check is skipped here to stand in for that race).
  const racing = env.makeRollout({ ledger: { ...env.deps.ledger, checkAllocate: async () => {} } });
  const raced = await failure(
    racing.addMapping("s1", "p3", { target: "10.0.0.5:22", public: { kind: "tcp", port: 43050 } }),
  );
  assert.equal(raced.code, "RF_ERR_LEDGER_PORT_TAKEN");
  assert.equal(raced.outcome, "rolled-back");
  assert.deepEqual(await footprint(env, "s1"), after, "rolled back: spec, routes and twin as before");
  // Also for a new site: nothing of it stays.
  const racedNew = await failure(
    racing.createSite({
      siteId: "s4",
      mappings: { a: { target: "10.0.0.1:22", public: { kind: "tcp", port: 43050 } } },
    }),
  );
  assert.equal(racedNew.outcome, "rolled-back");
  assert.equal(await env.deps.ledger.getSite("s4"), undefined);
  assert.equal((await env.deps.ledger.listRoutes({ siteId: "s4" })).length, 0);
  assert.equal(
    (await env.deps.relay.list()).some((hc) => hc.name === "site-s4"),
    false,
    "no hybrid connection left",
  );
});

test("a change whose backend fails half way stays saved and the next reconcile completes it", async (t) => {
  const env = await startRolloutEnv(t);
  await env.rollout.createSite({ siteId: "h1", profile: "single" });
  const hubDown = env.makeRollout({
    beforeStep: (step) => {
      if (step === "twin")
        throw new RelayFleetError("RF_ERR_ROLLOUT_IOTHUB", "IoT Hub could not patch the twin: ECONNREFUSED");
    },
  });
  const err = await failure(hubDown.addMapping("h1", "late", { target: "10.0.0.9:22" }));
  assert.equal(err.code, "RF_ERR_ROLLOUT_CHANGE_PENDING");
  assert.equal(err.status, 503);
  assert.equal(err.outcome, "completed-by-reconcile");
  const saved = JSON.parse((await env.deps.ledger.getSite("h1"))?.spec ?? "{}") as { mappings: object };
  assert.deepEqual(Object.keys(saved.mappings).sort(), ["app", "late"], "the change is on record");
  assert.deepEqual((await footprint(env, "h1")).twinMappings, ["app"], "the twin is not written yet");

  const report = await env.rollout.reconcile();
  assert.ok(report.items.some((i) => i.siteId === "h1" && i.repaired === true));
  assert.deepEqual((await footprint(env, "h1")).twinMappings, ["app", "late"], "reconcile completed it");
  assert.ok((await env.deps.ledger.listRoutes({ siteId: "h1" })).some((r) => r.portName === "late"));
});

test("adding an existing name is a 409; update changes only the fields given; replace is explicit", async (t) => {
  const env = await startRolloutEnv(t);
  const r = env.rollout;
  await r.createSite({ siteId: "u1", profile: "single" });
  let site = await r.addMapping("u1", "ssh", {
    target: "10.0.0.5:22",
    allowCidrs: ["203.0.113.0/24"],
    maxConnections: 7,
  });
  const port = site.mappings.ssh?.publicPort;
  const err = await failure(r.addMapping("u1", "ssh", { target: "10.0.0.6:22" }));
  assert.equal(err.code, "RF_ERR_ROLLOUT_MAPPING_EXISTS");
  assert.equal(err.status, 409);
  assert.equal((await r.getSite("u1")).mappings.ssh?.target, "10.0.0.5:22", "untouched");

  site = await r.updateMapping("u1", "ssh", { target: "10.0.0.6:22" });
  assert.equal(site.mappings.ssh?.target, "10.0.0.6:22");
  assert.deepEqual(site.mappings.ssh?.allowCidrs, ["203.0.113.0/24"], "the allowlist stays");
  assert.equal(site.mappings.ssh?.maxConnections, 7);
  assert.equal(site.mappings.ssh?.publicPort, port, "and so does the port");
  const route = (await env.deps.ledger.listRoutes({ siteId: "u1" })).find((x) => x.portName === "ssh");
  assert.deepEqual(route?.allowCidrs, ["203.0.113.0/24"], "the gateway keeps the restriction");
  assert.equal((await failure(r.updateMapping("u1", "nope", { enabled: false }))).status, 404);
  assert.equal((await failure(r.updateMapping("u1", "ssh", { maxConnections: 50_000 }))).status, 400);
  assert.equal((await failure(r.updateMapping("u1", "ssh", {}))).status, 400);

  site = await r.putMapping("u1", "ssh", { target: "10.0.0.7:22" });
  assert.deepEqual(site.mappings.ssh?.allowCidrs, [], "replace whole: the options left out are defaults");
  assert.equal(site.mappings.ssh?.maxConnections, 100);
});

test("names that objects already have are refused with a clear 400, in every writer", async (t) => {
  const env = await startRolloutEnv(t);
  const r = env.rollout;
  await r.createSite({ siteId: "n1", profile: "single" });
  const before = await footprint(env, "n1");
  for (const name of ["constructor", "__proto__", "toString", "hasOwnProperty"]) {
    for (const change of [
      () => r.addMapping("n1", name, { target: "10.0.0.5:22" }),
      () => r.putMapping("n1", name, { target: "10.0.0.5:22" }),
      () => r.updateMapping("n1", name, { target: "10.0.0.5:22" }),
      () => r.deleteMapping("n1", name),
    ]) {
      const err = await failure(change());
      assert.equal(err.status, 400, name);
      assert.equal(err.code, "RF_ERR_ROLLOUT_INVALID", name);
      assert.match(String((err as { message?: string }).message), /reserved name/, name);
    }
    // In a body, as JSON text carries it (an own "__proto__" key).
    const body = JSON.parse(`{"siteId":"n2","mappings":{"${name}":{"target":"10.0.0.5:22"}}}`);
    const err = await failure(r.createSite(body));
    assert.equal(err.status, 400, `${name} in a body`);
    assert.equal(err.issues?.[0]?.path, `mappings.${name}`);
  }
  assert.deepEqual(await footprint(env, "n1"), before);
  assert.equal(await env.deps.ledger.getSite("n2"), undefined);
});

test("the IoT Hub emulator's merge patch keeps constructor, __proto__ and toString like any key", async (t) => {
  const env = await startRolloutEnv(t);
  await env.deps.hub.ensureEdgeDevice("d1");
  await env.deps.hub.ensureModule("d1", MODULE_ID);
  const names = ["constructor", "__proto__", "toString"];
  const patch = JSON.parse(
    `{"mappings":{${names.map((n) => `"${n}":{"target":"${n}.local:22"}`).join(",")}}}`,
  );
  // Written through azure-iothub over REST; read from the emulator's state, because the SDK's own
  // Twin object (a lodash merge) drops `__proto__` on read, one reason rollout refuses such names.
  const desired = () =>
    (env.hubEmulator.hub.getTwin("d1", MODULE_ID).properties as { desired: Record<string, unknown> }).desired;
  await env.deps.hub.patchModuleDesired("d1", MODULE_ID, patch);
  const mappings = desired().mappings as Record<string, { target: string }>;
  for (const n of names) {
    assert.ok(Object.hasOwn(mappings, n), `${n} stored`);
    assert.equal(mappings[n]?.target, `${n}.local:22`);
  }
  await env.deps.hub.patchModuleDesired(
    "d1",
    MODULE_ID,
    JSON.parse(`{"mappings":{"__proto__":null,"toString":null}}`),
  );
  assert.deepEqual(Object.keys(desired().mappings as object), ["constructor"], "null removes them");
  const meta = (desired().$metadata as Record<string, Record<string, unknown>>).mappings ?? {};
  assert.ok(Object.hasOwn(meta, "constructor"), "metadata kept per key");
});

test("DeviceDeleted waits for the site's lock: an offboarding never interleaves with a change", async (t) => {
  const env = await startRolloutEnv(t);
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  let armed = false;
  let paused = false;
  const slow: Rollout = env.makeRollout({
    beforeStep: async (step, siteId) => {
      if (armed && step === "ports" && siteId === "d1") {
        armed = false;
        paused = true;
        await gate;
      }
    },
  });
  await slow.createSite({ siteId: "d1", profile: "single" });
  armed = true;
  const change = slow.addMapping("d1", "extra", { target: "10.0.0.5:22" }).catch((e: unknown) => e);
  await waitFor(() => paused, "the change is half way");
  await env.deps.hub.deleteDevice("d1");
  let offboarded = false;
  const event = slow
    .handleDeviceEvent({ eventType: "Microsoft.Devices.DeviceDeleted", data: { deviceId: "d1" } })
    .then((result) => {
      offboarded = true;
      return result;
    });
  await sleep(400);
  assert.equal(offboarded, false, "the offboarding waits while the change holds the site");
  release();
  await change;
  assert.equal((await event).action, "offboarded");
  assert.equal(await env.deps.ledger.getSite("d1"), undefined, "site row gone");
  assert.deepEqual(await env.deps.ledger.listRoutes({ siteId: "d1" }), [], "no route left behind");
});
