import { createServer, type Server, type TLSSocket } from "node:tls";
import type { Logger } from "../../../lib/log.ts";
import type { DesiredChange, Hub } from "../hub.ts";
import { listenOn } from "../listen.ts";
import type { HubQuotas } from "../quotas.ts";
import type { TelemetryLog } from "../telemetry.ts";
import { MqttConnection } from "./connection.ts";
import { MethodDispatcher } from "./methods.ts";
import { type SessionPersistence, SessionRegistry } from "./sessions.ts";
import { DESIRED_FILTER, desiredPatchTopic, inputsFilter } from "./topics.ts";

export interface MqttServer {
  port: number;
  sessions: SessionRegistry<MqttConnection>;
  methods: MethodDispatcher;
  /** Closes the live connection of a client id (tests: "the hub dropped the module"). */
  dropConnection(clientId: string): boolean;
  /** Sends a message to a module input (`devices/{d}/modules/{m}/inputs/{name}/{bag}`), QoS 1. */
  sendInput(deviceId: string, moduleId: string, inputName: string, body: Buffer | string): boolean;
  close(): Promise<void>;
}

export async function startMqttServer(opts: {
  hub: Hub;
  telemetry: TelemetryLog;
  host: string;
  port: number;
  cert: string;
  key: string;
  log: Logger;
  quotas: HubQuotas;
  /** Keeps `clean=false` sessions across restarts (the hub's state file). */
  sessionPersistence?: SessionPersistence;
}): Promise<MqttServer> {
  const sessions = new SessionRegistry<MqttConnection>(opts.sessionPersistence);
  const methods = new MethodDispatcher(sessions);
  const ctx = {
    hub: opts.hub,
    sessions,
    methods,
    telemetry: opts.telemetry,
    quotas: opts.quotas,
    log: opts.log,
  };
  const sockets = new Set<TLSSocket>();
  const server: Server = createServer({ cert: opts.cert, key: opts.key }, (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    new MqttConnection(socket, ctx);
  });
  // A failed TLS handshake is the client's problem, never the server's.
  server.on("tlsClientError", (err) => opts.log.debug({ err }, "TLS handshake failed"));

  const onDesired = (change: DesiredChange) => {
    const clientId =
      change.moduleId === undefined ? change.deviceId : `${change.deviceId}/${change.moduleId}`;
    const conn = sessions.subscribed(clientId, DESIRED_FILTER);
    conn?.publish(
      desiredPatchTopic(change.version),
      JSON.stringify({ ...change.patch, $version: change.version }),
    );
  };
  const onRevoked = (id: { deviceId: string; moduleId?: string }) => {
    sessions.forgetWhere((clientId) => {
      const [d, m] = clientId.split("/");
      return d === id.deviceId && (id.moduleId === undefined || m === id.moduleId);
    });
  };
  opts.hub.on("desired", onDesired);
  opts.hub.on("identityRevoked", onRevoked);

  const port = await listenOn(server, opts.port, opts.host);
  return {
    port,
    sessions,
    methods,
    dropConnection(clientId) {
      const conn = sessions.connection(clientId);
      if (!conn) return false;
      conn.socket.destroy();
      return true;
    },
    sendInput(deviceId, moduleId, inputName, body) {
      const clientId = `${deviceId}/${moduleId}`;
      const conn = sessions.subscribed(clientId, inputsFilter(deviceId, moduleId));
      // The SDK's input regex needs the slash after the input name, even with an empty bag.
      conn?.publish(`devices/${deviceId}/modules/${moduleId}/inputs/${inputName}/`, body, 1);
      return conn !== undefined;
    },
    async close() {
      opts.hub.off("desired", onDesired);
      opts.hub.off("identityRevoked", onRevoked);
      methods.close();
      for (const conn of sessions.connections()) conn.close("hub shutting down");
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
