/** What MQTT handlers share: the hub, the session registry, methods, telemetry and a logger. */
import type { Logger } from "../../../lib/log.ts";
import type { Hub } from "../hub.ts";
import type { HubQuotas } from "../quotas.ts";
import type { TelemetryLog } from "../telemetry.ts";
import type { MqttConnection } from "./connection.ts";
import type { MethodDispatcher } from "./methods.ts";
import type { SessionRegistry } from "./sessions.ts";

export interface MqttContext {
  hub: Hub;
  sessions: SessionRegistry<MqttConnection>;
  methods: MethodDispatcher;
  telemetry: TelemetryLog;
  quotas: HubQuotas;
  log: Logger;
}
