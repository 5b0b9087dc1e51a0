/**
 * The unmodified device SDK (ModuleClient.fromEnvironment(Mqtt)) and service SDK (Registry,
 * Client through createIotHubServiceClients) against the IoT Hub emulator over real TLS sockets.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import deviceSdk, { type ModuleClient, type Twin } from "azure-iot-device";
import mqttTransport from "azure-iot-device-mqtt";
import { createIotHubServiceClients, type IotHubServiceClients } from "../../lib/azure/iothub-service.ts";
import { type IotHubEmulator, startIotHubEmulator } from "../../sim/iothub-emulator/index.ts";
import { waitFor } from "../helpers/index.ts";

// CommonJS packages: take the classes from the default export.
const { ModuleClient: ModuleClientCtor } = deviceSdk;
const { Mqtt } = mqttTransport;

const DEVICE = "edge-interop";
const MODULE = "relayListener";

/** fromEnvironment reads process.env; set it only for the call. */
async function moduleClientFor(
  emu: IotHubEmulator,
  deviceId: string,
  moduleId: string,
): Promise<ModuleClient> {
  const env = emu.moduleEnvironment(deviceId, moduleId);
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    return await ModuleClientCtor.fromEnvironment(Mqtt);
  } finally {
    for (const k of Object.keys(env)) if (saved[k] === undefined) delete process.env[k];
  }
}

describe("ModuleClient + Registry + Client against the emulator", () => {
  let emu: IotHubEmulator;
  let svc: IotHubServiceClients;
  let client: ModuleClient;
  let twin: Twin;
  const desiredSeen: Array<Record<string, unknown>> = [];

  before(async () => {
    emu = await startIotHubEmulator();
    svc = createIotHubServiceClients(emu.serviceConnectionString, {
      restPort: emu.httpsPort,
      ca: emu.caCert,
    });
    await svc.registry.create({ deviceId: DEVICE, capabilities: { iotEdge: true } });
    await svc.registry.addModule({ deviceId: DEVICE, moduleId: MODULE });
    client = await moduleClientFor(emu, DEVICE, MODULE);
    await client.open();
    twin = await client.getTwin();
    twin.on("properties.desired", (patch: Record<string, unknown>) => desiredSeen.push(patch));
  });

  after(async () => {
    await client?.close();
    await emu?.close();
  });

  test("opens and reads its twin", () => {
    assert.equal(typeof twin.properties.desired.$version, "number");
    assert.equal(typeof twin.properties.reported.$version, "number");
  });

  test("receives a desired patch made through Registry.updateModuleTwin", async () => {
    const { responseBody: before } = await svc.registry.getModuleTwin(DEVICE, MODULE);
    await svc.registry.updateModuleTwin(
      DEVICE,
      MODULE,
      { properties: { desired: { relay: { hybridConnection: "site-1" } } } },
      before.etag,
    );
    const got = await waitFor(
      () =>
        desiredSeen.find(
          (p) => (p.relay as { hybridConnection?: string } | undefined)?.hybridConnection === "site-1",
        ),
      "desired patch on the module",
    );
    assert.equal(typeof got.$version, "number");
    assert.equal((twin.properties.desired.relay as { hybridConnection: string }).hybridConnection, "site-1");
  });

  test("reports properties and the Registry reads them back", async () => {
    await new Promise<void>((resolve, reject) =>
      twin.properties.reported.update({ status: { online: true }, counters: { n: 3 } }, (err?: Error) =>
        err ? reject(err) : resolve(),
      ),
    );
    const { responseBody } = await svc.registry.getModuleTwin(DEVICE, MODULE);
    const reported = responseBody.properties.reported as Record<string, unknown>;
    assert.deepEqual(reported.status, { online: true });
    assert.deepEqual(reported.counters, { n: 3 });
  });

  test("answers a direct method invoked through Client.invokeDeviceMethod", async () => {
    client.onMethod("echo", (req, res) => {
      res?.send(200, { echoed: req?.payload }, () => undefined);
    });
    await waitFor(
      () => emu.mqtt.sessions.subscribed(`${DEVICE}/${MODULE}`, "$iothub/methods/POST/#"),
      "methods subscription",
    );
    const { result } = await svc.client.invokeDeviceMethod(DEVICE, MODULE, {
      methodName: "echo",
      payload: { a: 1 },
      responseTimeoutInSeconds: 10,
    });
    assert.deepEqual(result, { status: 200, payload: { echoed: { a: 1 } } });
  });

  test("after the hub drops the connection, the SDK reconnects and desired patches keep arriving", async () => {
    const clientId = `${DEVICE}/${MODULE}`;
    const firstSocket = emu.mqtt.sessions.connection(clientId);
    assert.ok(firstSocket);
    assert.equal(emu.dropConnection(DEVICE, MODULE), true);
    await waitFor(() => {
      const c = emu.mqtt.sessions.connection(clientId);
      return c !== undefined && c !== firstSocket;
    }, "SDK reconnect");
    const { responseBody: t } = await svc.registry.getModuleTwin(DEVICE, MODULE);
    await svc.registry.updateModuleTwin(
      DEVICE,
      MODULE,
      { properties: { desired: { afterReconnect: 42 } } },
      t.etag,
    );
    await waitFor(() => desiredSeen.find((p) => p.afterReconnect === 42), "desired patch after reconnect");
  });
});
