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

/**
 * Where `clean=false` sessions outlive the process: the hub's state file. Real IoT Hub keeps them
 * across its own restarts and failovers, and the SDK never re-subscribes the twin topics, so an
 * emulator that forgot them on restart would silently stop delivering desired patches.
 */
export interface SessionPersistence {
  /** Subscriptions by client id; the registry shares these maps with its sessions. */
  subscriptions: Map<string, Map<string, 0 | 1>>;
  /** Called after any change, to schedule a write. */
  changed(): void;
}

export interface SessionEvents {
  subscribed: [string];
}

export class SessionRegistry<C extends SessionConnection> extends EventEmitter<SessionEvents> {
  private readonly sessions = new Map<string, MqttSession>();
  private readonly live = new Map<string, C>();

  constructor(private readonly persistence?: SessionPersistence) {
    super();
    for (const [clientId, subscriptions] of persistence?.subscriptions ?? []) {
      this.sessions.set(clientId, { clientId, subscriptions });
    }
  }

  /** Tells the registry a session's subscriptions changed (SUBSCRIBE / UNSUBSCRIBE). */
  subscriptionsChanged(): void {
    this.persistence?.changed();
  }

  private dropSession(clientId: string): void {
    if (!this.sessions.delete(clientId)) return;
    if (this.persistence?.subscriptions.delete(clientId)) this.persistence.changed();
  }

  /** Binds `conn` to its session; returns the session and whether it already existed. */
  attach(conn: C, clean: boolean): { session: MqttSession; present: boolean } {
    const old = this.live.get(conn.clientId);
    if (old && old !== conn) old.close("a new connection with the same client id replaced it");
    this.live.set(conn.clientId, conn);
    const existing = this.sessions.get(conn.clientId);
    if (clean || !existing) {
      const session: MqttSession = { clientId: conn.clientId, subscriptions: new Map() };
      this.sessions.set(conn.clientId, session);
      if (this.persistence) {
        this.persistence.subscriptions.set(conn.clientId, session.subscriptions);
        this.persistence.changed();
      }
      return { session, present: false };
    }
    return { session: existing, present: true };
  }

  detach(conn: C, clean: boolean): void {
    if (this.live.get(conn.clientId) !== conn) return;
    this.live.delete(conn.clientId);
    if (clean) this.dropSession(conn.clientId);
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
    this.dropSession(clientId);
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
