/**
 * The device SDK's MQTT transport with every connection attempt held to the module's reconnect
 * slot (ADR 0027). The SDK reconnects at once when a connection drops (its disconnect handler
 * re-enables twin and methods before it asks the retry policy), and its twin calls connect on
 * demand; neither goes through the module. All of them go through the transport's `MqttBase`
 * (the SDK's documented second constructor argument of `Mqtt`), so that is where the module waits:
 * `connect` is delayed by `HubConnectGate`, and a `disconnect` while an attempt waits cancels it.
 */
import mqttTransport from "azure-iot-device-mqtt";
import mqttBase from "azure-iot-mqtt-base";
import type { HubConnectGate } from "./hub-retry.ts";

// CommonJS packages: Node's ESM loader cannot see their named exports, so take the namespace.
const { Mqtt } = mqttTransport;
const { MqttBase } = mqttBase;

type Done = (err?: Error, result?: unknown) => void;
type BaseConfig = Parameters<InstanceType<typeof MqttBase>["connect"]>[0];

/** Thrown to a waiting attempt that was cancelled by a close. */
export class ConnectCancelledError extends Error {
  override name = "ConnectCancelledError";
}

function gatedBase(gate: HubConnectGate): InstanceType<typeof MqttBase> {
  class GatedMqttBase extends MqttBase {
    private waiting: { timer: NodeJS.Timeout; done: Done } | undefined;

    constructor() {
      super();
      // Emitted when an open connection closes unexpectedly (registered before the transport's own listener).
      this.on("error", () => gate.dropped());
    }

    override connect(config: BaseConfig, done: Done): void {
      const attempt = () => {
        this.waiting = undefined;
        super.connect(config, (err, result) => {
          if (err) gate.lost();
          else gate.connected();
          done(err, result);
        });
      };
      const wait = gate.delayBeforeConnect();
      if (wait <= 0) {
        attempt();
        return;
      }
      this.waiting = { timer: setTimeout(attempt, wait), done };
    }

    override disconnect(done: Done): void {
      const waiting = this.waiting;
      if (waiting) {
        this.waiting = undefined;
        clearTimeout(waiting.timer);
        waiting.done(new ConnectCancelledError("connection attempt cancelled while it waited for its slot"));
      }
      super.disconnect(done);
    }
  }
  return new GatedMqttBase();
}

/** A transport constructor for `ModuleClient.fromEnvironment` / `fromConnectionString`. */
export function gatedMqtt(gate: HubConnectGate): typeof Mqtt {
  return class GatedMqtt extends Mqtt {
    constructor(authenticationProvider: ConstructorParameters<typeof Mqtt>[0]) {
      super(authenticationProvider, gatedBase(gate));
    }
  };
}
