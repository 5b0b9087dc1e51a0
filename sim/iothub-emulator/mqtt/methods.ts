/**
 * Direct methods: the service invokes, the hub publishes `$iothub/methods/POST/{name}/?$rid=…` to
 * the target's live connection and waits for `$iothub/methods/res/{status}/?$rid=…`.
 * A target that is not connected and subscribed (within `connectTimeoutInSeconds`) is 404
 * DeviceNotOnline; no answer within `responseTimeoutInSeconds` is 504 GatewayTimeout.
 */
import { HubError, hubErrors } from "../errors.ts";
import { isJsonObject, type Json, type JsonObject, tryParseJson } from "../state/json.ts";
import type { SessionConnection, SessionRegistry } from "./sessions.ts";
import { METHODS_FILTER, methodRequestTopic } from "./topics.ts";

export interface MethodCall {
  methodName: string;
  payload: Json;
  responseTimeoutInSeconds: number;
  connectTimeoutInSeconds: number;
}

export interface MethodResult {
  status: number;
  payload: Json;
}

interface Pending {
  resolve: (r: MethodResult) => void;
  timer: NodeJS.Timeout;
}

/** Validates the body of `POST /twins/{d}[/modules/{m}]/methods`. */
export function parseMethodCall(body: unknown): MethodCall {
  if (!isJsonObject(body)) throw hubErrors.badRequest("method invocation must be a JSON object");
  const b: JsonObject = body;
  const name = b.methodName;
  if (typeof name !== "string" || !/^[^/?#\s]{1,100}$/.test(name))
    throw hubErrors.badRequest("methodName must be 1..100 characters without '/', '?', '#' or spaces");
  const num = (v: Json | undefined, dflt: number, min: number, max: number, what: string) => {
    if (v === undefined || v === null) return dflt;
    if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > max)
      throw hubErrors.badRequest(`${what} must be a number from ${min} to ${max}`);
    return v;
  };
  return {
    methodName: name,
    payload: b.payload === undefined ? null : b.payload,
    responseTimeoutInSeconds: num(b.responseTimeoutInSeconds, 30, 1, 300, "responseTimeoutInSeconds"),
    connectTimeoutInSeconds: num(b.connectTimeoutInSeconds, 0, 0, 300, "connectTimeoutInSeconds"),
  };
}

/** A connection that can be sent a method request (the MQTT connection, as the registry holds it). */
export interface MethodTarget extends SessionConnection {
  publish(topic: string, payload: string | Buffer, qos?: 0 | 1): void;
}

export class MethodDispatcher {
  private readonly sessions: SessionRegistry<MethodTarget>;
  private readonly pending = new Map<string, Pending>();
  private readonly waiters = new Set<() => void>();
  private nextRid = 1;

  constructor(sessions: SessionRegistry<MethodTarget>) {
    this.sessions = sessions;
    sessions.on("subscribed", () => {
      for (const wake of [...this.waiters]) wake();
    });
  }

  private async target(clientId: string, connectTimeoutSeconds: number): Promise<MethodTarget | undefined> {
    const now = this.sessions.subscribed(clientId, METHODS_FILTER);
    if (now || connectTimeoutSeconds <= 0) return now;
    return new Promise((resolve) => {
      const wake = () => {
        const conn = this.sessions.subscribed(clientId, METHODS_FILTER);
        if (!conn) return;
        done(conn);
      };
      const timer = setTimeout(() => done(undefined), connectTimeoutSeconds * 1000);
      const done = (conn: MethodTarget | undefined) => {
        clearTimeout(timer);
        this.waiters.delete(wake);
        resolve(conn);
      };
      this.waiters.add(wake);
    });
  }

  async invoke(deviceId: string, moduleId: string | undefined, call: MethodCall): Promise<MethodResult> {
    const clientId = moduleId === undefined ? deviceId : `${deviceId}/${moduleId}`;
    const conn = await this.target(clientId, call.connectTimeoutInSeconds);
    if (!conn)
      throw new HubError(
        "DeviceNotOnline",
        `Timed out waiting for ${clientId} to connect: it is not online or not subscribed to methods`,
      );
    const rid = (this.nextRid++).toString(16);
    const key = `${clientId} ${rid}`;
    return new Promise<MethodResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(key);
        reject(new HubError("GatewayTimeout", `Timed out waiting for the response from ${clientId}`));
      }, call.responseTimeoutInSeconds * 1000);
      this.pending.set(key, { resolve, timer });
      // The SDK JSON.parses a non-empty body; an empty one would make it answer 400 itself.
      conn.publish(methodRequestTopic(call.methodName, rid), JSON.stringify(call.payload ?? null));
    });
  }

  /** A `$iothub/methods/res/{status}` from `clientId`; unknown rids are ignored. */
  resolve(clientId: string, rid: string, status: number, body: string): void {
    const key = `${clientId} ${rid}`;
    const p = this.pending.get(key);
    if (!p) return;
    this.pending.delete(key);
    clearTimeout(p.timer);
    const parsed = body.length === 0 ? { ok: true as const, value: null } : tryParseJson(body);
    p.resolve({ status, payload: parsed.ok ? parsed.value : body });
  }

  close(): void {
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
    for (const wake of this.waiters) wake();
    this.waiters.clear();
  }
}
