/**
 * SUBSCRIBE / UNSUBSCRIBE: only the IoT Hub filters an identity may use are granted (QoS at most
 * 1); others get 0x80 in SUBACK. Grants live in the session so they survive reconnects.
 */
import type { ISubscribePacket, IUnsubscribePacket } from "mqtt-packet";
import type { MqttClient } from "../context.ts";
import { allowedFilters } from "../topics.ts";

export function handleSubscribe(conn: MqttClient, packet: ISubscribePacket): void {
  const allowed = allowedFilters(conn.deviceId, conn.moduleId);
  const granted: number[] = [];
  for (const sub of packet.subscriptions) {
    if (!allowed.has(sub.topic)) {
      conn.ctx.log.info({ clientId: conn.clientId, topic: sub.topic }, "MQTT subscription refused");
      granted.push(0x80);
      continue;
    }
    const qos: 0 | 1 = sub.qos >= 1 ? 1 : 0;
    conn.session?.subscriptions.set(sub.topic, qos);
    granted.push(qos);
  }
  conn.ctx.sessions.subscriptionsChanged();
  conn.send({ cmd: "suback", messageId: packet.messageId ?? 0, granted });
  for (const sub of packet.subscriptions) {
    if (allowed.has(sub.topic)) conn.ctx.sessions.emit("subscribed", `${conn.clientId} ${sub.topic}`);
  }
}

export function handleUnsubscribe(conn: MqttClient, packet: IUnsubscribePacket): void {
  for (const topic of packet.unsubscriptions) conn.session?.subscriptions.delete(topic);
  conn.ctx.sessions.subscriptionsChanged();
  conn.send({ cmd: "unsuback", messageId: packet.messageId ?? 0, granted: [] });
}
