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
