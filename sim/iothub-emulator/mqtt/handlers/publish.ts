/**
 * PUBLISH from a client: twin GET, reported PATCH, method responses and telemetry. QoS 2 and
 * topics outside the identity's own namespace close the connection, as IoT Hub does; a bad body
 * on a twin request gets an error response the SDK understands (`{errorCode, message}`).
 */
import type { IPublishPacket } from "mqtt-packet";
import { errorMessage } from "../../../../lib/errors.ts";
import { HubError } from "../../errors.ts";
import { tryParseJson } from "../../state/json.ts";
import type { MqttClient } from "../context.ts";
import { parseClientTopic, twinResponseTopic } from "../topics.ts";

function payloadText(packet: IPublishPacket): string {
  return typeof packet.payload === "string" ? packet.payload : packet.payload.toString("utf8");
}

function twinError(conn: MqttClient, rid: string, err: unknown): void {
  const status = err instanceof HubError ? (err.status ?? 400) : 500;
  const errorCode = err instanceof HubError ? err.numericCode : 500001;
  conn.publish(twinResponseTopic(status, rid), JSON.stringify({ errorCode, message: errorMessage(err) }));
}

export function handlePublish(conn: MqttClient, packet: IPublishPacket): void {
  const { hub, methods, telemetry, log } = conn.ctx;
  if (packet.qos === 2) {
    conn.close("QoS 2 is not supported by IoT Hub");
    return;
  }
  const topic = parseClientTopic(packet.topic);
  const ack = () => {
    if (packet.qos === 1) conn.send({ cmd: "puback", messageId: packet.messageId ?? 0 });
  };
  switch (topic.kind) {
    case "twin-get": {
      ack();
      // Answered whatever the subscription state: after a reconnect the SDK does not re-subscribe.
      try {
        conn.ctx.quotas.take("twinRead");
        conn.publish(
          twinResponseTopic(200, topic.rid),
          JSON.stringify(hub.twinProperties(conn.deviceId, conn.moduleId)),
        );
      } catch (err) {
        twinError(conn, topic.rid, err);
      }
      return;
    }
    case "twin-reported": {
      ack();
      const parsed = tryParseJson(payloadText(packet));
      if (!parsed.ok) {
        twinError(conn, topic.rid, new HubError("ArgumentInvalid", `malformed JSON: ${parsed.error}`));
        return;
      }
      try {
        conn.ctx.quotas.take("twinUpdate");
        const version = hub.reportProperties(conn.deviceId, conn.moduleId, parsed.value);
        conn.publish(twinResponseTopic(204, topic.rid, version), "");
      } catch (err) {
        twinError(conn, topic.rid, err);
      }
      return;
    }
    case "method-response": {
      ack();
      methods.resolve(conn.clientId, topic.rid, topic.status, payloadText(packet));
      return;
    }
    case "telemetry": {
      if (topic.deviceId !== conn.deviceId || topic.moduleId !== conn.moduleId) {
        conn.close(`${conn.identity} may not publish as ${topic.deviceId}/${topic.moduleId ?? ""}`);
        return;
      }
      // Above the D2C throttle the message is refused: the connection closes unacknowledged.
      if (!conn.ctx.quotas.tryTake("d2c")) {
        conn.close("device-to-cloud sends throttled");
        return;
      }
      ack();
      telemetry.record({
        deviceId: conn.deviceId,
        ...(conn.moduleId === undefined ? {} : { moduleId: conn.moduleId }),
        ...(topic.properties["$.on"] === undefined ? {} : { outputName: topic.properties["$.on"] }),
        properties: topic.properties,
        body: Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload),
        receivedAt: Date.now(),
      });
      return;
    }
    default:
      log.info(
        { clientId: conn.clientId, topic: packet.topic.slice(0, 200) },
        "MQTT publish to unknown topic",
      );
      conn.close(`publishing to '${packet.topic.slice(0, 100)}' is not allowed`);
      return;
  }
}
