import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { createRegistryHub } from "../../cloud/functions/src/rollout/index.ts";
import { createIotHubServiceClients } from "../../lib/azure/iothub-service.ts";
import { startIotHubEmulator } from "../../sim/iothub-emulator/index.ts";

describe("rollout hub: module twin query", () => {
  it("reads every page of a multi-page query once (continuation token passed on)", async () => {
    const emulator = await startIotHubEmulator();
    after(() => emulator.close());
    const { registry } = createIotHubServiceClients(emulator.serviceConnectionString, {
      restPort: emulator.httpsPort,
      ca: emulator.caCert,
    });
    for (let i = 0; i < 7; i++) {
      await registry.create({ deviceId: `dev-${i}`, capabilities: { iotEdge: true } });
      await registry.addModule({ deviceId: `dev-${i}`, moduleId: "relayListener" });
    }
    const hub = createRegistryHub(registry, { queryPageSize: 2 });
    const twins = await Promise.race([
      hub.queryModuleTwins("relayListener"),
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error("query never finished")), 20_000).unref(),
      ),
    ]);
    assert.equal(twins.length, 7);
    assert.deepEqual(new Set(twins.map((t) => t.deviceId)).size, 7);
  });
});
