/**
 * The IoT Hub emulator enforces a SKU's throttles where the unmodified service SDK sees them:
 * an S1 hub takes 100 identity-registry operations in a burst and answers those above it with 429
 * ThrottlingException, and a refused create leaves no device behind.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createIotHubServiceClients } from "../../lib/azure/iothub-service.ts";
import { startIotHubEmulator } from "../../sim/iothub-emulator/index.ts";

test("an S1 hub takes a minute's registry budget at once, answers the rest with 429 and keeps nothing of them", async (t) => {
  const emu = await startIotHubEmulator({ sku: "S1", units: 1, workloadPort: false });
  t.after(() => emu.close());
  const { registry } = createIotHubServiceClients(emu.serviceConnectionString, {
    restPort: emu.httpsPort,
    ca: emu.caCert,
  });
  // 130 creates at once: a minute's budget (100) passes, plus what refills while they run
  // (100 a minute); the rest are refused.
  const started = Date.now();
  const results = await Promise.all(
    Array.from({ length: 130 }, (_, i) =>
      registry.create({ deviceId: `q-${i}` }).then(
        () => undefined,
        (err: Error & { response?: { statusCode?: number } }) => err,
      ),
    ),
  );
  const seconds = (Date.now() - started) / 1000;
  const refused = results.filter((r) => r !== undefined);
  const created = results.length - refused.length;
  assert.ok(created >= 100, `the burst budget passed (${created} created)`);
  assert.ok(created <= 100 + Math.ceil((seconds * 100) / 60) + 1, `${created} created in ${seconds} s`);
  assert.ok(refused.length > 0, "operations above the budget are refused");
  for (const err of refused) {
    assert.equal(err.response?.statusCode, 429);
    assert.equal(err.name, "ThrottlingError", "the SDK maps it to its throttling error");
  }
  assert.equal(emu.quotas.counts.registry.throttled, refused.length);
  assert.equal(emu.hub.listDevices().length, created, "a refused create leaves no device");
  // Twin reads are a separate budget (100 a second on S1): still served.
  const { responseBody: twin } = await registry.getTwin("q-0");
  assert.equal(twin.deviceId, "q-0");
});

test("bulk registry calls (the SDK's addDevices/removeDevices): one registry operation per device, refused whole past the budget with Retry-After", async (t) => {
  const emu = await startIotHubEmulator({ sku: "S1", units: 1, workloadPort: false });
  t.after(() => emu.close());
  const { registry } = createIotHubServiceClients(emu.serviceConnectionString, {
    restPort: emu.httpsPort,
    ca: emu.caCert,
  });
  const ids = (from: number, n: number) =>
    Array.from({ length: n }, (_, i) => ({ deviceId: `b-${from + i}`, capabilities: { iotEdge: true } }));
  await registry.addDevices(ids(0, 60));
  assert.equal(emu.hub.listDevices().length, 60);
  assert.equal(emu.quotas.counts.registry.allowed, 60, "each device in the call counts");
  assert.equal(
    emu.hub.getDevice("b-7").capabilities &&
      (emu.hub.getDevice("b-7").capabilities as { iotEdge: boolean }).iotEdge,
    true,
  );
  // 60 more do not fit the 40 left: refused whole, nothing created, with the wait as a hint.
  const refused = await registry.addDevices(ids(60, 60)).then(
    () => undefined,
    (err: Error & { response?: { statusCode?: number; headers: Record<string, string> } }) => err,
  );
  assert.equal(refused?.response?.statusCode, 429);
  const retryAfter = Number(refused?.response?.headers["retry-after"]);
  assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter} s`);
  assert.equal(emu.hub.listDevices().length, 60, "a throttled bulk call creates nothing");
  // Existing devices are reported per device (400 with the operation result); the new one is created.
  const mixed = await registry.addDevices([...ids(0, 2), ...ids(200, 1)]).then(
    () => undefined,
    (err: Error & { responseBody?: string; response?: { statusCode?: number } }) => err,
  );
  assert.equal(mixed?.response?.statusCode, 400);
  const body = JSON.parse(mixed?.responseBody ?? "{}") as {
    isSuccessful: boolean;
    errors: Array<{ deviceId: string; errorCode: string }>;
  };
  assert.equal(body.isSuccessful, false);
  assert.deepEqual(
    body.errors.map((e) => [e.deviceId, e.errorCode]),
    [
      ["b-0", "DeviceAlreadyExists"],
      ["b-1", "DeviceAlreadyExists"],
    ],
  );
  assert.ok(emu.hub.listDevices().some((d) => d.deviceId === "b-200"));
  // A bad body is refused before anything is counted or done.
  const counted = emu.quotas.counts.registry.allowed;
  const bad = await registry.removeDevices([{ deviceId: "b-1" }, { deviceId: "b-1" }], true).then(
    () => undefined,
    (err: Error & { response?: { statusCode?: number } }) => err,
  );
  assert.equal(bad?.response?.statusCode, 400);
  assert.equal(emu.quotas.counts.registry.allowed, counted);
  assert.ok(emu.hub.listDevices().some((d) => d.deviceId === "b-1"));
  await registry.removeDevices([{ deviceId: "b-0" }, { deviceId: "b-1" }], true);
  assert.ok(!emu.hub.listDevices().some((d) => d.deviceId === "b-0" || d.deviceId === "b-1"));
});
