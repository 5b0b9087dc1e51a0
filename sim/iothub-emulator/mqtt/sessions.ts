/**
 * Sessions and live connections per MQTT client id. IoT Hub keeps a `clean=false` session's
 * subscriptions across connections, and the device SDK relies on it: after a reconnect it does not
 * re-subscribe the twin topics (iothub-protocol.md §1.2). One live connection per client id; a new
 * one closes the old (hub error 400027 ConnectionForcefullyClosedOnNewConnection).
 */
import { EventEmitter } from "node:events";

export interface MqttSession {
  clientId: string;
  /** Granted filters and their QoS. */
  subscriptions: Map<string, 0 | 1>;
}

/** What the session registry needs from a connection. */
export interface SessionConnection {
  readonly clientId: string;
  close(reason: string): void;
}

export interface SessionEvents {
  subscribed: [string];
}

export class SessionRegistry<C extends SessionConnection> extends EventEmitter<SessionEvents> {
  private readonly sessions = new Map<string, MqttSession>();
  private readonly live = new Map<string, C>();

  /** Binds `conn` to its session; returns the session and whether it already existed. */
  attach(conn: C, clean: boolean): { session: MqttSession; present: boolean } {
    const old = this.live.get(conn.clientId);
    if (old && old !== conn) old.close("a new connection with the same client id replaced it");
    this.live.set(conn.clientId, conn);
    const existing = this.sessions.get(conn.clientId);
    if (clean || !existing) {
      const session: MqttSession = { clientId: conn.clientId, subscriptions: new Map() };
      this.sessions.set(conn.clientId, session);
      return { session, present: false };
    }
    return { session: existing, present: true };
  }

  detach(conn: C, clean: boolean): void {
    if (this.live.get(conn.clientId) !== conn) return;
    this.live.delete(conn.clientId);
    if (clean) this.sessions.delete(conn.clientId);
  }

  connection(clientId: string): C | undefined {
    return this.live.get(clientId);
  }

  session(clientId: string): MqttSession | undefined {
    return this.sessions.get(clientId);
  }

  /** Live connection whose session holds `filter`. */
  subscribed(clientId: string, filter: string): C | undefined {
    const conn = this.live.get(clientId);
    return conn && this.sessions.get(clientId)?.subscriptions.has(filter) ? conn : undefined;
  }

  /** Forgets a session entirely (identity deleted). */
  forget(clientId: string): void {
    this.live.get(clientId)?.close("identity removed or credentials changed");
    this.sessions.delete(clientId);
  }

  /** Forgets every session (live or not) whose client id `matches`. */
  forgetWhere(matches: (clientId: string) => boolean): void {
    for (const clientId of new Set([...this.sessions.keys(), ...this.live.keys()])) {
      if (matches(clientId)) this.forget(clientId);
    }
  }

  connections(): C[] {
    return [...this.live.values()];
  }

  clientIds(): string[] {
    return [...this.live.keys()];
  }
}
