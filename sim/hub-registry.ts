/**
 * The IoT Hub registry reads the simulation makes with the hub's service connection string: a
 * module's key (to start its process the way iotedgehubdev hands a module its connection string)
 * and a module twin (tests and the live view compare desired with reported).
 */
import { readFileSync } from "node:fs";
import { createIotHubServiceClients } from "../lib/azure/iothub-service.ts";

export interface HubInfo {
  hostName: string;
  mqttPort: number;
  httpsPort: number;
  caFile: string;
  serviceConnectionString: string;
}

export interface ModuleTwinView {
  desired: Record<string, unknown>;
  reported: Record<string, unknown>;
}

export class HubRegistry {
  private readonly registry: ReturnType<typeof createIotHubServiceClients>["registry"];

  /** The service SDK's Registry (deployments: `relay-fleet deployment apply`'s code takes it). */
  get service(): ReturnType<typeof createIotHubServiceClients>["registry"] {
    return this.registry;
  }

  constructor(hub: HubInfo) {
    this.registry = createIotHubServiceClients(hub.serviceConnectionString, {
      restPort: hub.httpsPort,
      ca: readFileSync(hub.caFile),
    }).registry;
  }

  /** The primary symmetric key of a module identity. */
  async moduleKey(deviceId: string, moduleId: string): Promise<string> {
    const mod = (await this.registry.getModule(deviceId, moduleId)).responseBody as unknown as {
      authentication?: { symmetricKey?: { primaryKey?: string } };
    };
    const key = mod.authentication?.symmetricKey?.primaryKey;
    if (!key) throw new Error(`module ${deviceId}/${moduleId} has no key`);
    return key;
  }

  async moduleTwin(deviceId: string, moduleId: string): Promise<ModuleTwinView> {
    const twin = (await this.registry.getModuleTwin(deviceId, moduleId)).responseBody as unknown as {
      properties?: { desired?: Record<string, unknown>; reported?: Record<string, unknown> };
    };
    return { desired: twin.properties?.desired ?? {}, reported: twin.properties?.reported ?? {} };
  }
}
