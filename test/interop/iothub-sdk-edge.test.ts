/**
 * More of the device SDK against the emulator: the IoT Edge runtime environment (IOTEDGE_* and
 * the workload API), a refused SAS key, oversize reported properties, and a method that never
 * answers (504 GatewayTimeoutError from the service SDK).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import deviceSdk, { type ModuleClient } from "azure-iot-device";
import mqttTransport from "azure-iot-device-mqtt";
import { createIotHubServiceClients, type IotHubServiceClients } from "../../lib/azure/iothub-service.ts";
import { type IotHubEmulator, startIotHubEmulator } from "../../sim/iothub-emulator/index.ts";
import { waitFor } from "../helpers/index.ts";

const { ModuleClient: ModuleClientCtor, Client: DeviceClientCtor, Message } = deviceSdk;
const { Mqtt } = mqttTransport;

/** Runs `fn` with exactly `vars` set among the SDK's environment variables, then restores them. */
async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const names = [
    "EdgeHubConnectionString",
    "IotHubConnectionString",
    "EdgeModuleCACertificateFile",
    ...Object.keys(vars),
  ];
  const saved = new Map(names.map((n) => [n, process.env[n]]));
  for (const n of names) delete process.env[n];
  Object.assign(process.env, vars);
  try {
    return await fn();
  } finally {
    for (const [n, v] of saved) {
      if (v === undefined) delete process.env[n];
      else process.env[n] = v;
    }
  }
}

describe("device SDK edge cases against the emulator", () => {
  let emu: IotHubEmulator;
  let svc: IotHubServiceClients;
  const clients: ModuleClient[] = [];
  const D = "edge-rt";

  before(async () => {
    emu = await startIotHubEmulator();
    svc = createIotHubServiceClients(emu.serviceConnectionString, {
      restPort: emu.httpsPort,
      ca: emu.caCert,
    });
    await svc.registry.create({ deviceId: D, capabilities: { iotEdge: true } });
    await svc.registry.addModule({ deviceId: D, moduleId: "relayListener" });
    await svc.registry.addModule({ deviceId: D, moduleId: "silent" });
  });
  after(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    await emu?.close();
  });

  test("ModuleClient.fromEnvironment(Mqtt) under IOTEDGE_* signs through the workload API", async () => {
    const client = await withEnv(emu.edgeEnvironment(D, "relayListener"), () =>
      ModuleClientCtor.fromEnvironment(Mqtt),
    );
    clients.push(client);
    await client.open();
    const twin = await client.getTwin();
    const seen: unknown[] = [];
    twin.on("properties.desired", (p: unknown) => seen.push(p));
    await svc.registry.updateModuleTwin(
      D,
      "relayListener",
      { properties: { desired: { via: "edge" } } },
      "*",
    );
    await waitFor(() => seen.find((p) => (p as { via?: string }).via === "edge"), "desired patch");
    assert.equal(emu.hub.module(D, "relayListener").connectionState, "Connected");
  });

  test("a wrong key is refused with 'Not authorized', and the hub keeps serving", async () => {
    const good = emu.connectionString(D, "relayListener");
    const bad = good.replace(
      /SharedAccessKey=[^;]+/,
      `SharedAccessKey=${Buffer.alloc(32, 1).toString("base64")}`,
    );
    const client = ModuleClientCtor.fromConnectionString(bad, Mqtt);
    await client.setOptions({ ca: emu.caCert });
    // The SDK labels every failed first connection "Not authorized" (even TLS errors): check
    // mqtt.js's own reason, which only a CONNACK 5 produces.
    await assert.rejects(client.open(), /Connection refused: Not authorized/);
    await client.close().catch(() => undefined);
    const ok = ModuleClientCtor.fromConnectionString(emu.connectionString(D, "silent"), Mqtt);
    clients.push(ok);
    await ok.setOptions({ ca: emu.caCert });
    await ok.open();
    await ok.getTwin();
  });

  test("oversize reported properties fail in the SDK callback and change nothing", async () => {
    const client = clients.at(-1)!;
    const twin = await client.getTwin();
    const before = emu.hub.twinProperties(D, "silent");
    const err = await new Promise<Error | undefined>((resolve) =>
      twin.properties.reported.update({ blob: "x".repeat(40_000) }, (e?: Error) => resolve(e)),
    );
    assert.ok(err, "the update must fail");
    assert.deepEqual(emu.hub.twinProperties(D, "silent"), before);
  });

  test("a method that is never answered is 504 GatewayTimeoutError", async () => {
    const client = clients.at(-1)!;
    client.onMethod("hang", () => undefined);
    await waitFor(
      () => emu.mqtt.sessions.subscribed(`${D}/silent`, "$iothub/methods/POST/#"),
      "methods subscription",
    );
    await assert.rejects(
      svc.client.invokeDeviceMethod(D, "silent", {
        methodName: "hang",
        payload: {},
        responseTimeoutInSeconds: 1,
      }),
      (err: Error & { response?: { statusCode?: number } }) => {
        assert.equal(err.name, "GatewayTimeoutError");
        assert.equal(err.response?.statusCode, 504);
        return true;
      },
    );
  });

  test("a device Client (not a module) connects, reads its twin and sends telemetry", async () => {
    await svc.registry.create({ deviceId: "plain-device" });
    await svc.registry.updateTwin("plain-device", { properties: { desired: { hello: "device" } } }, "*");
    const device = DeviceClientCtor.fromConnectionString(emu.connectionString("plain-device"), Mqtt);
    await device.setOptions({ ca: emu.caCert });
    await device.open();
    try {
      const twin = await device.getTwin();
      assert.equal((twin.properties.desired as { hello?: string }).hello, "device");
      const msg = new Message(JSON.stringify({ t: 1 }));
      msg.properties.add("kind", "probe");
      await device.sendEvent(msg);
      const [got] = emu.telemetry.list({ deviceId: "plain-device" });
      assert.equal(got?.properties.kind, "probe");
      assert.equal(got?.moduleId, undefined);
    } finally {
      await device.close();
    }
  });
});
