/**
 * IoT Hub emulator around the registry: Event Grid device events to a webhook (with retry), state
 * persisted across a restart (same keys, same twins), the query throttle, and the command-line
 * entry point with the service-client factory reading the environment.
 */
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { createIotHubServiceClients, fromEnv } from "../../lib/azure/iothub-service.ts";
import { startIotHubEmulator } from "../../sim/iothub-emulator/index.ts";
import { spawnTs, tempDir, waitFor } from "../helpers/index.ts";

test("DeviceCreated / DeviceDeleted reach the webhook in the Event Grid schema, retried after a failure", async (t) => {
  const received: unknown[] = [];
  let calls = 0;
  const hook = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => {
      body += c.toString();
    });
    req.on("end", () => {
      calls++;
      // The first delivery fails: the emulator must retry, not drop or block.
      if (calls === 1) return res.writeHead(500).end();
      received.push(...(JSON.parse(body) as unknown[]));
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => hook.listen(0, "127.0.0.1", r));
  t.after(() => new Promise<void>((r) => hook.close(() => r())));
  const url = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/api/events`;
  const emu = await startIotHubEmulator({ eventGridWebhook: url, eventGridRetry: { baseDelayMs: 20 } });
  t.after(() => emu.close());
  const svc = createIotHubServiceClients(emu.serviceConnectionString, {
    restPort: emu.httpsPort,
    ca: emu.caCert,
  });

  emu.provisionDevice("eg-1", { iotEdge: true, tags: { relay: { site: "s1" } } });
  await svc.registry.delete("eg-1");
  await waitFor(() => received.length >= 2, "two events");
  const [created, deleted] = received as Array<{
    eventType: string;
    subject: string;
    data: { deviceId: string; twin: { tags: Record<string, unknown> } };
  }>;
  assert.equal(created?.eventType, "Microsoft.Devices.DeviceCreated");
  assert.equal(created?.subject, "devices/eg-1");
  assert.deepEqual(created?.data.twin.tags, { relay: { site: "s1" } });
  assert.equal(deleted?.eventType, "Microsoft.Devices.DeviceDeleted");
  assert.equal(deleted?.data.deviceId, "eg-1");
  assert.ok((emu.eventStats()?.failedAttempts ?? 0) >= 1);
});

test("state survives a restart with the same keys, twins and configurations", async (t) => {
  const dir = tempDir(t, "iothub-state-");
  const stateFile = join(dir, "state.json");
  const first = await startIotHubEmulator({ dir, stateFile });
  first.provisionDevice("keep-1", { iotEdge: true, tags: { site: "k" } });
  first.hub.createModule(first.hub.device("keep-1"), "relayListener");
  first.hub.updateTwin("keep-1", "relayListener", { properties: { desired: { x: 1 } } }, "*", "patch");
  const key = first.hub.module("keep-1", "relayListener").primaryKey;
  const service = first.serviceConnectionString;
  const ca = first.caCert;
  await first.close();

  const second = await startIotHubEmulator({ dir, stateFile });
  // Closed in the test body: after-hooks run in registration order and the temp dir's goes first.
  try {
    await checkSecond();
  } finally {
    await second.close();
  }
  async function checkSecond() {
    assert.equal(second.serviceConnectionString.split(";").pop(), service.split(";").pop());
    assert.equal(second.caCert, ca);
    assert.equal(second.hub.module("keep-1", "relayListener").primaryKey, key);
    const svc = createIotHubServiceClients(second.serviceConnectionString, {
      restPort: second.httpsPort,
      ca: second.caCert,
    });
    const { responseBody: twin } = await svc.registry.getModuleTwin("keep-1", "relayListener");
    assert.equal((twin.properties.desired as { x?: number }).x, 1);
  }
});

test("the query throttle answers 429 ThrottlingError to a polling loop", async (t) => {
  const emu = await startIotHubEmulator({ queryThrottlePerMinute: 5 });
  t.after(() => emu.close());
  const svc = createIotHubServiceClients(emu.serviceConnectionString, {
    restPort: emu.httpsPort,
    ca: emu.caCert,
  });
  let error: (Error & { response?: { statusCode?: number } }) | undefined;
  for (let i = 0; i < 10 && !error; i++) {
    try {
      await svc.registry.createQuery("SELECT * FROM devices").next();
    } catch (err) {
      error = err as Error & { response?: { statusCode?: number } };
    }
  }
  assert.equal(error?.name, "ThrottlingError");
  assert.equal(error?.response?.statusCode, 429);
});

test("main.ts prints its listening line and fromEnv() reaches it", async (t) => {
  const dir = tempDir(t, "iothub-main-");
  const proc = spawnTs(t, "sim/iothub-emulator/main.ts", ["--dir", dir], { LOG_LEVEL: "warn" });
  const [line] = await proc.waitForLine(/\{"event":"listening".*\}/);
  const info = JSON.parse(line) as {
    httpsPort: number;
    mqttPort: number;
    caFile: string;
    serviceConnectionString: string;
  };
  assert.ok(info.mqttPort >= 1024 && info.httpsPort >= 1024);
  const { registry } = fromEnv({
    IOTHUB_CONNECTION_STRING: info.serviceConnectionString,
    IOTHUB_REST_PORT: String(info.httpsPort),
    IOTHUB_CA_FILE: info.caFile,
  });
  const { responseBody } = await registry.create({ deviceId: "from-main" });
  assert.equal(responseBody.deviceId, "from-main");
  assert.equal(await proc.stop("SIGTERM"), 0);
});
