/**
 * What the MQTT handlers share and see: the hub, the session registry, methods, telemetry and a
 * logger (`MqttContext`), and the connection as a handler uses it (`MqttClient`, implemented by
 * connection.ts). Both are declared here, with no import of connection.ts or the handlers, so the
 * connection can import its handlers without an import circle.
 */
import type { Packet } from "mqtt-packet";
import type { Logger } from "../../../lib/log.ts";
import type { Hub } from "../hub.ts";
import type { HubQuotas } from "../quotas.ts";
import type { TelemetryLog } from "../telemetry.ts";
import type { MethodDispatcher } from "./methods.ts";
import type { MqttSession, SessionConnection, SessionRegistry } from "./sessions.ts";

export interface MqttContext {
  hub: Hub;
  sessions: SessionRegistry<MqttClient>;
  methods: MethodDispatcher;
  telemetry: TelemetryLog;
  quotas: HubQuotas;
  log: Logger;
}

/** One client connection, as the packet handlers read and answer it. */
export interface MqttClient extends SessionConnection {
  readonly ctx: MqttContext;
  clientId: string;
  deviceId: string;
  moduleId: string | undefined;
  clean: boolean;
  /** Set by CONNECT once the client is authenticated. */
  session: MqttSession | undefined;
  /** The `{deviceId}/{moduleId}` or `{deviceId}` label used in logs and errors. */
  readonly identity: string;
  /** Closes the connection when no packet arrives for 1.5 × the CONNECT's keepalive. */
  setKeepalive(seconds: number): void;
  /** Closes the connection when its SAS token expires. */
  expireAt(unixSeconds: number): void;
  send(packet: Packet): void;
  publish(topic: string, payload: string | Buffer, qos?: 0 | 1): void;
  close(reason: string): void;
}
