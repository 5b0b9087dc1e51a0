/**
 * CONNECT: identity from the client id (`d` or `d/m`), username `{host}/{clientId}/?api-version=…`,
 * password a SAS token signed with the identity's key for `{host}/devices/{d}[/modules/{m}]`.
 * Any failure answers CONNACK 5 ("Not authorized") and closes, as IoT Hub does; a connection
 * above the hub's new-connection throttle gets CONNACK 3 ("Server unavailable").
 */
import type { IConnectPacket } from "mqtt-packet";
import { errorMessage } from "../../../../lib/errors.ts";
import { verifyHubSasToken } from "../../auth.ts";
import type { MqttClient } from "../context.ts";

const USERNAME = /^([^/]+)\/([^/]+)\/(?:([^/]+)\/)?\?(.*)$/;

function refuse(conn: MqttClient, code: 1 | 2 | 3 | 4 | 5, reason: string): void {
  conn.ctx.log.info({ clientId: conn.clientId, reason }, "MQTT CONNECT refused");
  conn.send({ cmd: "connack", returnCode: code, sessionPresent: false });
  conn.close(reason);
}

export function handleConnect(conn: MqttClient, packet: IConnectPacket): void {
  const { hub, sessions } = conn.ctx;
  if (packet.protocolVersion !== 4) {
    refuse(conn, 1, "only MQTT 3.1.1 is supported");
    return;
  }
  const clientId = packet.clientId ?? "";
  const parts = clientId.split("/");
  if (parts.length < 1 || parts.length > 2 || !parts[0]) {
    refuse(conn, 2, "client id must be {device}[/{module}]");
    return;
  }
  const deviceId = parts[0];
  const moduleId = parts[1];
  const m = USERNAME.exec(packet.username ?? "");
  const userClient = m ? (m[3] === undefined ? m[2] : `${m[2]}/${m[3]}`) : undefined;
  if (!m || m[1]?.toLowerCase() !== hub.hostName.toLowerCase() || userClient !== clientId) {
    refuse(conn, 5, "username must be {hostName}/{clientId}/?api-version=…");
    return;
  }
  // The new-connection throttle: "server unavailable", which the device SDKs retry.
  if (!conn.ctx.quotas.tryTake("connect")) {
    refuse(conn, 3, "new device connections throttled");
    return;
  }
  const keys = hub.keysFor(deviceId, moduleId);
  if (!keys) {
    refuse(conn, 5, `identity ${clientId} is not registered or is disabled`);
    return;
  }
  const resource = `${hub.hostName}/devices/${deviceId}${moduleId === undefined ? "" : `/modules/${moduleId}`}`;
  let expiresAt: number;
  try {
    expiresAt = verifyHubSasToken(packet.password?.toString("utf8"), keys, resource).expiresAt;
  } catch (err) {
    refuse(conn, 5, errorMessage(err));
    return;
  }
  conn.clientId = clientId;
  conn.deviceId = deviceId;
  conn.moduleId = moduleId;
  const clean = packet.clean ?? true;
  conn.clean = clean;
  const { session, present } = sessions.attach(conn, clean);
  conn.session = session;
  conn.setKeepalive(packet.keepalive ?? 0);
  conn.expireAt(expiresAt);
  hub.setConnectionState(deviceId, moduleId, true);
  conn.send({ cmd: "connack", returnCode: 0, sessionPresent: present });
  conn.ctx.log.info({ clientId, sessionPresent: present }, "MQTT client connected");
  // Method subscriptions restored from a persistent session make the client reachable again.
  for (const filter of session.subscriptions.keys()) sessions.emit("subscribed", `${clientId} ${filter}`);
}
