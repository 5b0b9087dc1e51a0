/**
 * One client socket: bytes → packets (mqtt-packet's parser) → the handler for each packet type.
 * The connection never interprets IoT Hub topics itself; `handlers/` do. A parse error, a packet
 * before CONNECT, or a missed keepalive closes the socket; nothing here can throw past the socket.
 */
import type { TLSSocket } from "node:tls";
import mqttPacket, { type Packet } from "mqtt-packet";
import { errorMessage } from "../../../lib/errors.ts";
import type { MqttClient, MqttContext } from "./context.ts";
import { handleConnect } from "./handlers/connect.ts";
import { handlePublish } from "./handlers/publish.ts";
import { handleSubscribe, handleUnsubscribe } from "./handlers/subscribe.ts";
import type { MqttSession } from "./sessions.ts";

/** Largest packet accepted: the SDK's 256 KiB message limit plus topic and header room. */
const MAX_PACKET_BYTES = 300 * 1024;

/** Connection waits this long for CONNECT before giving up on the socket. */
const CONNECT_TIMEOUT_MS = 10_000;

export class MqttConnection implements MqttClient {
  readonly socket: TLSSocket;
  readonly ctx: MqttContext;
  clientId = "";
  deviceId = "";
  moduleId: string | undefined;
  clean = true;
  session: MqttSession | undefined;
  closed = false;
  private nextMessageId = 1;
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private keepaliveMs = 0;
  private tokenTimer: NodeJS.Timeout | undefined;

  constructor(socket: TLSSocket, ctx: MqttContext) {
    this.socket = socket;
    this.ctx = ctx;
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    // Bytes received since the last complete packet: bounds what the parser may buffer, so a
    // peer announcing a huge packet cannot make the hub hold it in memory.
    let pendingBytes = 0;
    parser.on("packet", (packet: Packet) => {
      pendingBytes = 0;
      this.onPacket(packet);
    });
    parser.on("error", (err: Error) => this.close(`malformed MQTT packet: ${err.message}`));
    socket.on("data", (chunk: Buffer) => {
      if (this.closed) return;
      this.armKeepalive();
      pendingBytes += chunk.length;
      if (pendingBytes > MAX_PACKET_BYTES) {
        this.close(`MQTT packet larger than ${MAX_PACKET_BYTES} bytes`);
        return;
      }
      try {
        parser.parse(chunk);
      } catch (err) {
        this.close(`malformed MQTT packet: ${errorMessage(err)}`);
      }
    });
    socket.on("error", () => this.close("socket error"));
    socket.on("close", () => this.close("socket closed"));
    this.keepaliveTimer = setTimeout(() => this.close("no CONNECT in time"), CONNECT_TIMEOUT_MS);
  }

  get authenticated(): boolean {
    return this.session !== undefined;
  }

  /** The `{deviceId}/{moduleId}` or `{deviceId}` label used in logs and errors. */
  get identity(): string {
    return this.moduleId === undefined ? this.deviceId : `${this.deviceId}/${this.moduleId}`;
  }

  setKeepalive(seconds: number): void {
    // MQTT 3.1.1 §3.1.2.10: the server may close after 1.5 × keepalive without a packet.
    this.keepaliveMs = seconds > 0 ? seconds * 1500 : 0;
    this.armKeepalive();
  }

  /** Closes the connection when the SAS token expires, as IoT Hub does. */
  expireAt(unixSeconds: number): void {
    const ms = unixSeconds * 1000 - Date.now();
    if (ms < 2 ** 31 - 1)
      this.tokenTimer = setTimeout(() => this.close("SAS token expired"), Math.max(ms, 0));
  }

  private armKeepalive(): void {
    if (!this.authenticated) return;
    if (this.keepaliveTimer) clearTimeout(this.keepaliveTimer);
    this.keepaliveTimer =
      this.keepaliveMs > 0 ? setTimeout(() => this.close("keepalive expired"), this.keepaliveMs) : undefined;
  }

  private onPacket(packet: Packet): void {
    if (this.closed) return;
    try {
      if (packet.cmd === "connect") {
        if (this.authenticated) {
          this.close("second CONNECT on one connection");
          return;
        }
        handleConnect(this, packet);
        return;
      }
      if (!this.authenticated) {
        this.close(`${packet.cmd} before CONNECT`);
        return;
      }
      switch (packet.cmd) {
        case "publish":
          handlePublish(this, packet);
          return;
        case "subscribe":
          handleSubscribe(this, packet);
          return;
        case "unsubscribe":
          handleUnsubscribe(this, packet);
          return;
        case "pingreq":
          this.send({ cmd: "pingresp" });
          return;
        case "puback":
          return;
        case "disconnect":
          this.close("client disconnected");
          return;
        default:
          this.close(`unsupported packet ${packet.cmd}`);
          return;
      }
    } catch (err) {
      this.ctx.log.warn({ err, clientId: this.clientId }, "MQTT handler failed; closing connection");
      this.close(`internal error: ${errorMessage(err)}`);
    }
  }

  send(packet: Packet): void {
    if (this.closed || this.socket.destroyed) return;
    this.socket.write(mqttPacket.generate(packet));
  }

  /** Publishes to this client; QoS 1 gets a message id (delivery is best effort, like QoS 0). */
  publish(topic: string, payload: string | Buffer, qos: 0 | 1 = 0): void {
    const messageId = qos === 1 ? this.allocateMessageId() : undefined;
    this.send({
      cmd: "publish",
      topic,
      payload,
      qos,
      dup: false,
      retain: false,
      ...(messageId === undefined ? {} : { messageId }),
    });
  }

  private allocateMessageId(): number {
    const id = this.nextMessageId;
    this.nextMessageId = id >= 65535 ? 1 : id + 1;
    return id;
  }

  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    if (this.keepaliveTimer) clearTimeout(this.keepaliveTimer);
    if (this.tokenTimer) clearTimeout(this.tokenTimer);
    if (this.authenticated) {
      this.ctx.log.info({ clientId: this.clientId, reason }, "MQTT client disconnected");
      this.ctx.sessions.detach(this, this.clean);
      if (!this.ctx.sessions.connection(this.clientId))
        this.ctx.hub.setConnectionState(this.deviceId, this.moduleId, false);
    }
    this.socket.end();
    // A peer that never reads would keep the socket half-open; destroy after a grace period.
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }
}
