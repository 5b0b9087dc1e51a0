/**
 * The IoT Hub emulator: MQTT over TLS for devices and modules, HTTPS REST for the service SDK,
 * Event Grid device events to a webhook, and the IoT Edge workload API, all on loopback ports
 * ≥ 1024 with a CA generated at start (or reused from `dir`). The unmodified azure-iot-device-mqtt
 * and azure-iothub SDKs are its judges (docs: iothub-protocol.md).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TrustedIssuer } from "../../lib/entra/jwt.ts";
import { createLogger, type Logger } from "../../lib/log.ts";
import { type LocalCertificateFiles, writeLocalCertificates } from "../../lib/tls/local-ca.ts";
import { ConfigurationService } from "./configurations.ts";
import { deviceEvent, type EventDeliveryStats, EventGridPublisher } from "./events/event-grid.ts";
import { Hub } from "./hub.ts";
import { type MqttServer, startMqttServer } from "./mqtt/server.ts";
import { QueryThrottle } from "./query/throttle.ts";
import { HubQuotas, type HubSku, type QuotaClass, type QuotaOverrides } from "./quotas.ts";
import { HubRbac } from "./rbac.ts";
import type { ErrorFormat } from "./rest/http.ts";
import { type RestServer, startRestServer } from "./rest/server.ts";
import type { JsonObject } from "./state/json.ts";
import { HubStore } from "./state/store.ts";
import { TelemetryLog } from "./telemetry.ts";
import { startWorkloadServer, type WorkloadServer } from "./workload/server.ts";

export { HubError } from "./errors.ts";
export type { EventGridEvent } from "./events/event-grid.ts";
export type { TelemetryMessage } from "./telemetry.ts";

export interface IotHubEmulatorOptions {
  /** Loopback address to bind (default `127.0.0.1`). */
  host?: string;
  /** Host name in connection strings and SAS audiences (default: `host`, which clients dial). */
  hostName?: string;
  /** MQTT-over-TLS port (default 0 = any free port). */
  mqttPort?: number;
  /** HTTPS REST port (default 0). */
  httpsPort?: number;
  /** Plain-HTTP IoT Edge workload API port (default 0); `false` disables it. */
  workloadPort?: number | false;
  /** Where the CA and server certificate live; reused when present (default: a temp dir). */
  dir?: string;
  /** JSON file holding identities, keys, twins and configurations across restarts. */
  stateFile?: string;
  /** Primary key of the `iothubowner` policy (default: saved in the state file, else random). */
  ownerKey?: string;
  /** URL that receives DeviceCreated / DeviceDeleted events in the Event Grid schema. */
  eventGridWebhook?: string;
  /** Query operations (pages) allowed per minute; 0 (default) = unthrottled. */
  queryThrottlePerMinute?: number;
  /** Enforce this SKU's published operation throttles (quotas.ts); none (default) = unthrottled. */
  sku?: HubSku;
  /** Units of `sku` (default 1). */
  units?: number;
  /** Per-second rates that replace the SKU's for some classes, e.g. `{ connect: 5 }` in a test. */
  quotaOverrides?: QuotaOverrides;
  /** Benchmarks only: quota buckets refill this many times faster (quotas.ts); default 1. */
  quotaTimeScale?: number;
  /** Sees each quota decision from the first connection on (set before the emulator listens). */
  onQuotaDecision?: (cls: QuotaClass, allowed: boolean, at: number) => void;
  /** REST error body format (default `legacy`, which the SDK maps to its error classes). */
  errorFormat?: ErrorFormat;
  /** Microsoft Entra ID issuers whose bearer tokens the service API accepts (with role assignments). */
  trustedIssuers?: TrustedIssuer[];
  /** Event Grid retry tuning (tests shorten it). */
  eventGridRetry?: { maxAttempts?: number; baseDelayMs?: number };
  logger?: Logger;
}

export interface ModuleEnvironment {
  EdgeHubConnectionString: string;
  EdgeModuleCACertificateFile: string;
}

export interface IotHubEmulator {
  readonly host: string;
  readonly hostName: string;
  readonly mqttPort: number;
  readonly httpsPort: number;
  /** Workload API port, or undefined when disabled. */
  readonly workloadPort: number | undefined;
  readonly caFile: string;
  readonly caCert: string;
  /** `HostName=…;SharedAccessKeyName=iothubowner;SharedAccessKey=…` */
  readonly serviceConnectionString: string;
  /** The hub's registry and twins, in process (tests and the simulation use it directly). */
  readonly hub: Hub;
  readonly configurations: ConfigurationService;
  /** Telemetry and output events received from devices and modules. */
  readonly telemetry: TelemetryLog;
  readonly mqtt: MqttServer;
  readonly rest: RestServer;
  /** Azure RBAC of the service API: `rbac.put(id, principalId, role)` assigns an IoT Hub data role. */
  readonly rbac: HubRbac;
  /** Operations allowed and throttled, by class. */
  readonly quotas: HubQuotas;
  /** Event Grid delivery counters (undefined without a webhook). */
  eventStats(): EventDeliveryStats | undefined;
  /** `IOTHUB_CONNECTION_STRING`, `IOTHUB_REST_PORT`, `IOTHUB_CA_FILE` for a service process. */
  serviceEnvironment(): Record<string, string>;
  /** The iotedgehubdev convention for `ModuleClient.fromEnvironment(Mqtt)`; the module must exist. */
  moduleEnvironment(deviceId: string, moduleId: string): ModuleEnvironment;
  /** The `IOTEDGE_*` variables the edge runtime gives a module (needs the workload API). */
  edgeEnvironment(deviceId: string, moduleId: string): Record<string, string>;
  /** Connection string of a device or module identity (with `GatewayHostName` for the MQTT port). */
  connectionString(deviceId: string, moduleId?: string): string;
  /** Creates a device the way DPS does, with an initial twin (tags, desired) in the Created event. */
  provisionDevice(
    deviceId: string,
    opts?: { iotEdge?: boolean; tags?: JsonObject; desired?: JsonObject },
  ): JsonObject;
  /** Drops the live MQTT connection of a device or module (the SDK then reconnects). */
  dropConnection(deviceId: string, moduleId?: string): boolean;
  close(): Promise<void>;
}

function loadOrCreateCertificates(dir: string, names: string[]): LocalCertificateFiles {
  const caFile = join(dir, "ca.pem");
  const certFile = join(dir, "server.pem");
  const keyFile = join(dir, "server-key.pem");
  if (existsSync(caFile) && existsSync(certFile) && existsSync(keyFile)) {
    // Reusing the CA across restarts keeps modules that already read the CA file working.
    return {
      caFile,
      certFile,
      keyFile,
      caCert: readFileSync(caFile, "utf8"),
      cert: readFileSync(certFile, "utf8"),
      key: readFileSync(keyFile, "utf8"),
    };
  }
  return writeLocalCertificates(dir, names, "Relay Fleet IoT Hub emulator CA");
}

/** Starts the emulator; every listener binds `host` (loopback) on the given or a free port. */
export async function startIotHubEmulator(options: IotHubEmulatorOptions = {}): Promise<IotHubEmulator> {
  const host = options.host ?? "127.0.0.1";
  const hostName = options.hostName ?? host;
  const log = options.logger ?? createLogger("iothub-emulator", { level: process.env.LOG_LEVEL ?? "warn" });
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), "iothub-emulator-"));
  const certs = loadOrCreateCertificates(dir, [host, hostName]);
  const store = new HubStore(options.stateFile, options.ownerKey);
  const hub = new Hub(store, hostName);
  const configurations = new ConfigurationService(hub);
  const telemetry = new TelemetryLog();
  const events = options.eventGridWebhook
    ? new EventGridPublisher(options.eventGridWebhook, log, options.eventGridRetry)
    : undefined;
  if (events) {
    const hubName = hostName.split(".")[0] ?? hostName;
    hub.on("deviceCreated", (twin) =>
      events.publish(deviceEvent("Microsoft.Devices.DeviceCreated", hubName, twin)),
    );
    hub.on("deviceDeleted", (twin) =>
      events.publish(deviceEvent("Microsoft.Devices.DeviceDeleted", hubName, twin)),
    );
  }
  const quotas = new HubQuotas(
    options.sku,
    options.units ?? 1,
    Date.now,
    options.quotaOverrides,
    options.quotaTimeScale,
  );
  quotas.onDecision = options.onQuotaDecision;
  const mqtt = await startMqttServer({
    hub,
    quotas,
    telemetry,
    host,
    port: options.mqttPort ?? 0,
    cert: certs.cert,
    key: certs.key,
    log,
    sessionPersistence: { subscriptions: store.mqttSessions, changed: () => store.markDirty() },
  });
  const rbac = new HubRbac(options.trustedIssuers ?? []);
  const rest = await startRestServer({
    ctx: {
      rbac,
      hub,
      methods: mqtt.methods,
      configurations,
      queryThrottle: new QueryThrottle(options.queryThrottlePerMinute ?? 0),
      quotas,
      telemetry,
    },
    host,
    port: options.httpsPort ?? 0,
    cert: certs.cert,
    key: certs.key,
    log,
    ...(options.errorFormat ? { errorFormat: options.errorFormat } : {}),
  });
  const workload: WorkloadServer | undefined =
    options.workloadPort === false
      ? undefined
      : await startWorkloadServer({ hub, caCert: certs.caCert, host, port: options.workloadPort ?? 0 });

  const owner = store.policies.iothubowner!;
  const serviceConnectionString = `HostName=${hostName};SharedAccessKeyName=iothubowner;SharedAccessKey=${owner.primaryKey}`;
  const gateway = `${host}:${mqtt.port}`;
  const connectionString = (deviceId: string, moduleId?: string) => {
    const rec = moduleId === undefined ? hub.device(deviceId) : hub.module(deviceId, moduleId);
    return [
      `HostName=${hostName}`,
      `DeviceId=${deviceId}`,
      ...(moduleId === undefined ? [] : [`ModuleId=${moduleId}`]),
      `SharedAccessKey=${rec.primaryKey}`,
      `GatewayHostName=${gateway}`,
    ].join(";");
  };
  let closed = false;
  log.info({ hostName, mqttPort: mqtt.port, httpsPort: rest.port }, "IoT Hub emulator listening");

  return {
    host,
    hostName,
    mqttPort: mqtt.port,
    httpsPort: rest.port,
    workloadPort: workload?.port,
    caFile: certs.caFile,
    caCert: certs.caCert,
    serviceConnectionString,
    hub,
    configurations,
    telemetry,
    mqtt,
    rest,
    rbac,
    quotas,
    eventStats: () => events?.stats,
    serviceEnvironment: () => ({
      IOTHUB_CONNECTION_STRING: serviceConnectionString,
      IOTHUB_REST_PORT: String(rest.port),
      IOTHUB_CA_FILE: certs.caFile,
    }),
    moduleEnvironment: (deviceId, moduleId) => ({
      EdgeHubConnectionString: connectionString(deviceId, moduleId),
      EdgeModuleCACertificateFile: certs.caFile,
    }),
    edgeEnvironment(deviceId, moduleId) {
      if (!workload) throw new Error("the workload API is disabled (workloadPort: false)");
      const mod = hub.module(deviceId, moduleId);
      return {
        IOTEDGE_WORKLOADURI: `http://${host}:${workload.port}/`,
        IOTEDGE_DEVICEID: deviceId,
        IOTEDGE_MODULEID: moduleId,
        IOTEDGE_IOTHUBHOSTNAME: hostName,
        IOTEDGE_GATEWAYHOSTNAME: gateway,
        IOTEDGE_AUTHSCHEME: "sasToken",
        IOTEDGE_MODULEGENERATIONID: mod.generationId,
        IOTEDGE_APIVERSION: "2018-06-28",
      };
    },
    connectionString,
    provisionDevice: (deviceId, opts = {}) => {
      hub.createDevice(deviceId, opts);
      return hub.getDevice(deviceId);
    },
    dropConnection: (deviceId, moduleId) =>
      mqtt.dropConnection(moduleId === undefined ? deviceId : `${deviceId}/${moduleId}`),
    async close() {
      if (closed) return;
      closed = true;
      events?.close();
      await Promise.all([mqtt.close(), rest.close(), workload?.close()]);
      await store.flush();
      if (ownDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}
