/**
 * The service SDK (azure-iothub Registry, through createIotHubServiceClients) against the IoT Hub
 * emulator over HTTPS: CRUD, etags, error mapping, query paging, configurations, method errors.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createIotHubServiceClients, type IotHubServiceClients } from "../../lib/azure/iothub-service.ts";
import { type IotHubEmulator, startIotHubEmulator } from "../../sim/iothub-emulator/index.ts";

/** Runs `fn` and returns the SDK error it rejects with. */
async function sdkError(fn: () => Promise<unknown>): Promise<Error & { response?: { statusCode?: number } }> {
  try {
    await fn();
  } catch (err) {
    return err as Error & { response?: { statusCode?: number } };
  }
  assert.fail("expected the call to fail");
}

describe("Registry against the emulator", () => {
  let emu: IotHubEmulator;
  let svc: IotHubServiceClients;

  before(async () => {
    emu = await startIotHubEmulator();
    svc = createIotHubServiceClients(emu.serviceConnectionString, {
      restPort: emu.httpsPort,
      ca: emu.caCert,
    });
  });
  after(() => emu?.close());

  test("creates, reads, updates, lists and deletes a device with generated keys", async () => {
    const { responseBody: created } = await svc.registry.create({
      deviceId: "crud-1",
      capabilities: { iotEdge: true },
    });
    assert.equal(created.deviceId, "crud-1");
    assert.equal(created.capabilities?.iotEdge, true);
    const keys = created.authentication?.symmetricKey;
    assert.match(keys?.primaryKey ?? "", /^[A-Za-z0-9+/]{43}=$/);
    assert.notEqual(keys?.primaryKey, keys?.secondaryKey);
    const { responseBody: got } = await svc.registry.get("crud-1");
    assert.equal(got.etag, created.etag);
    const { responseBody: updated } = await svc.registry.update({ ...got, status: "disabled" });
    assert.equal(updated.status, "disabled");
    assert.notEqual(updated.etag, created.etag);
    const { responseBody: list } = await svc.registry.list();
    assert.ok(list.some((d) => d.deviceId === "crud-1"));
    const { responseBody: modules } = await svc.registry.getModulesOnDevice("crud-1");
    assert.deepEqual(modules.map((m) => m.moduleId).sort(), ["$edgeAgent", "$edgeHub"]);
    await svc.registry.delete("crud-1");
    const err = await sdkError(() => svc.registry.get("crud-1"));
    assert.equal(err.name, "DeviceNotFoundError");
    assert.equal(err.response?.statusCode, 404);
  });

  test("a duplicate device is 409 DeviceAlreadyExistsError and changes nothing", async () => {
    const { responseBody: first } = await svc.registry.create({ deviceId: "dup-1" });
    const err = await sdkError(() => svc.registry.create({ deviceId: "dup-1" }));
    assert.equal(err.name, "DeviceAlreadyExistsError");
    assert.equal(err.response?.statusCode, 409);
    const { responseBody: again } = await svc.registry.get("dup-1");
    assert.equal(
      again.authentication?.symmetricKey?.primaryKey,
      first.authentication?.symmetricKey?.primaryKey,
    );
  });

  test("modules: add, duplicate 409, 404 on unknown, update with etag", async () => {
    await svc.registry.create({ deviceId: "mod-1", capabilities: { iotEdge: true } });
    const { responseBody: m } = await svc.registry.addModule({
      deviceId: "mod-1",
      moduleId: "relayListener",
    });
    assert.equal(m.moduleId, "relayListener");
    const dup = await sdkError(() =>
      svc.registry.addModule({ deviceId: "mod-1", moduleId: "relayListener" }),
    );
    assert.equal(dup.response?.statusCode, 409);
    const missing = await sdkError(() => svc.registry.getModule("mod-1", "nope"));
    assert.equal(missing.response?.statusCode, 404);
    const noDevice = await sdkError(() => svc.registry.getModule("no-such-device", "x"));
    assert.equal(noDevice.name, "DeviceNotFoundError");
    const stale = await sdkError(() => svc.registry.updateModule({ ...m, etag: "bm9wZQ==", managedBy: "x" }));
    assert.equal(stale.name, "InvalidEtagError");
    await svc.registry.removeModule("mod-1", "relayListener");
    const { responseBody: left } = await svc.registry.getModulesOnDevice("mod-1");
    assert.ok(!left.some((x) => x.moduleId === "relayListener"));
  });

  test("twin patch merges with null delete; a stale etag is 412 InvalidEtagError and changes nothing", async () => {
    await svc.registry.create({ deviceId: "twin-1" });
    const { responseBody: t0 } = await svc.registry.getTwin("twin-1");
    const { responseBody: t1 } = await svc.registry.updateTwin(
      "twin-1",
      { tags: { site: "s1", region: "eu" }, properties: { desired: { a: { b: 1, c: 2 } } } },
      t0.etag,
    );
    assert.deepEqual(t1.tags, { site: "s1", region: "eu" });
    assert.equal(t1.properties.desired.$version, 2);
    const { responseBody: t2 } = await svc.registry.updateTwin(
      "twin-1",
      { tags: { region: null }, properties: { desired: { a: { c: null } } } },
      "*",
    );
    assert.deepEqual(t2.tags, { site: "s1" });
    assert.deepEqual((t2.properties.desired as Record<string, unknown>).a, { b: 1 });
    const stale = await sdkError(() => svc.registry.updateTwin("twin-1", { tags: { site: "s2" } }, t0.etag));
    assert.equal(stale.name, "InvalidEtagError");
    assert.equal(stale.response?.statusCode, 412);
    const { responseBody: t3 } = await svc.registry.getTwin("twin-1");
    assert.deepEqual(t3.tags, { site: "s1" });
    assert.equal(t3.etag, t2.etag);
  });

  test("twin limits: oversize tags and bad keys are 400 and change nothing", async () => {
    await svc.registry.create({ deviceId: "limits-1" });
    const big = await sdkError(() =>
      svc.registry.updateTwin("limits-1", { tags: { blob: "x".repeat(9000) } }, "*"),
    );
    assert.equal(big.name, "ArgumentError");
    const bigDesired = await sdkError(() =>
      svc.registry.updateTwin("limits-1", { properties: { desired: { blob: "x".repeat(33_000) } } }, "*"),
    );
    assert.equal(bigDesired.response?.statusCode, 400);
    const badKey = await sdkError(() => svc.registry.updateTwin("limits-1", { tags: { "a.b": 1 } }, "*"));
    assert.equal(badKey.response?.statusCode, 400);
    let deep: Record<string, unknown> = { leaf: 1 };
    for (let i = 0; i < 11; i++) deep = { n: deep };
    const tooDeep = await sdkError(() =>
      svc.registry.updateTwin("limits-1", { properties: { desired: deep } }, "*"),
    );
    assert.equal(tooDeep.response?.statusCode, 400);
    const { responseBody: t } = await svc.registry.getTwin("limits-1");
    assert.deepEqual(t.tags, {});
    assert.equal(t.properties.desired.$version, 1);
  });

  test("no more than 50 modules per device", async () => {
    await svc.registry.create({ deviceId: "many-mods" });
    for (let i = 0; i < 50; i++) await svc.registry.addModule({ deviceId: "many-mods", moduleId: `m${i}` });
    const err = await sdkError(() => svc.registry.addModule({ deviceId: "many-mods", moduleId: "m50" }));
    assert.equal(err.response?.statusCode, 403);
  });

  test("query pages through 260 devices with continuation tokens", async () => {
    for (let i = 0; i < 260; i++)
      emu.provisionDevice(`q-${String(i).padStart(3, "0")}`, { tags: { fleet: "q", n: i } });
    const query = svc.registry.createQuery(
      "SELECT * FROM devices WHERE tags.fleet = 'q' AND tags.n >= 10",
      100,
    );
    const ids: string[] = [];
    let pages = 0;
    while (query.hasMoreResults) {
      const { result } = await query.nextAsTwin();
      pages++;
      ids.push(...result.map((t) => t.deviceId));
    }
    assert.equal(pages, 3);
    assert.equal(ids.length, 250);
    assert.equal(new Set(ids).size, 250);
    assert.equal(ids[0], "q-010");
    const { result: none } = await svc.registry
      .createQuery("SELECT * FROM devices WHERE NOT IS_DEFINED(tags.fleet) AND tags.fleet = 'q'")
      .next();
    assert.deepEqual(none, []);
  });

  test("module twin queries and a bad query (400)", async () => {
    await svc.registry.create({ deviceId: "mq-1", capabilities: { iotEdge: true } });
    await svc.registry.addModule({ deviceId: "mq-1", moduleId: "relayListener" });
    const { result } = await svc.registry
      .createQuery("SELECT * FROM devices.modules WHERE deviceId = 'mq-1' AND moduleId = 'relayListener'")
      .next();
    assert.equal(result.length, 1);
    const bad = await sdkError(() => svc.registry.createQuery("SELECT * FROM devices WHERE (").next());
    assert.equal(bad.response?.statusCode, 400);
  });

  test("configurations: targetCondition selects edge devices, highest priority wins, apply content (204)", async () => {
    emu.provisionDevice("cfg-a", { iotEdge: true, tags: { ring: "canary" } });
    emu.provisionDevice("cfg-b", { iotEdge: true, tags: { ring: "prod" } });
    emu.provisionDevice("cfg-c", { iotEdge: false, tags: { ring: "canary" } });
    const content = (v: string) => ({
      modulesContent: { relayListener: { "properties.desired": { schemaVersion: "1.0", marker: v } } },
    });
    await svc.registry.addConfiguration({
      id: "base",
      content: content("base"),
      targetCondition: "tags.ring = 'canary' OR tags.ring = 'prod'",
      priority: 1,
    } as never);
    await svc.registry.addConfiguration({
      id: "canary",
      content: content("canary"),
      targetCondition: "tags.ring = 'canary'",
      priority: 10,
    } as never);
    const marker = async (d: string) =>
      (
        (await svc.registry.getModuleTwin(d, "relayListener")).responseBody.properties.desired as {
          marker?: string;
        }
      ).marker;
    assert.equal(await marker("cfg-a"), "canary");
    assert.equal(await marker("cfg-b"), "base");
    await assert.rejects(svc.registry.getModuleTwin("cfg-c", "relayListener"));
    const { responseBody: cfg } = await svc.registry.getConfiguration("canary");
    assert.equal((cfg.systemMetrics as { results: { targetedCount: number } }).results.targetedCount, 2);
    // Retargeting a device by its tags applies the other configuration.
    await svc.registry.updateTwin("cfg-b", { tags: { ring: "canary" } }, "*");
    assert.equal(await marker("cfg-b"), "canary");
    await svc.registry.removeConfiguration("canary");
    assert.equal(await marker("cfg-a"), "base");
    const dup = await sdkError(() =>
      svc.registry.addConfiguration({ id: "base", content: content("x"), targetCondition: "*" } as never),
    );
    assert.equal(dup.response?.statusCode, 409);
    await svc.registry.applyConfigurationContentOnDevice("cfg-a", content("direct") as never);
    assert.equal(await marker("cfg-a"), "direct");
  });

  test("direct method to an offline module is 404, not retried", async () => {
    await svc.registry.create({ deviceId: "offline-1", capabilities: { iotEdge: true } });
    await svc.registry.addModule({ deviceId: "offline-1", moduleId: "relayListener" });
    const err = await sdkError(() =>
      svc.client.invokeDeviceMethod("offline-1", "relayListener", { methodName: "ping", payload: null }),
    );
    assert.equal(err.response?.statusCode, 404);
    const unknown = await sdkError(() =>
      svc.client.invokeDeviceMethod("nobody", "relayListener", { methodName: "ping", payload: null }),
    );
    assert.equal(unknown.name, "DeviceNotFoundError");
  });
});
