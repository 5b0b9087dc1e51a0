/**
 * TLS session resumption for the relay's WebSockets. Every relayed connection that misses a
 * standby opens a fresh TLS connection to the relay (the gateway's sender connect, the module's
 * rendezvous); without resumption each of them costs a full handshake: the relay's certificate
 * signature, its verification and the chain check on our side. A resumed handshake (a TLS 1.3
 * session ticket, or a TLS 1.2 session) skips those, on both ends.
 *
 * ws opens its sockets through `createConnection`; this one passes the last session the relay
 * issued for that host, port, server name and trust anchor and records each new one. A relay
 * that does not resume simply answers with a full handshake: nothing else changes.
 */

import { isIP } from "node:net";
import type { ConnectionOptions, TLSSocket } from "node:tls";
import { connect as tlsConnect } from "node:tls";

/** Sessions kept at most (one per relay endpoint and CA in practice; bounded against odd callers). */
const MAX_SESSIONS = 256;

/**
 * A session older than this is not offered (the relay would refuse it and fall back to a full
 * handshake anyway; TLS 1.3 tickets from Node live 300 s by default, RFC 8446 allows up to 7 days).
 */
const SESSION_MAX_AGE_MS = 240_000;

const sessions = new Map<string, { session: Buffer; at: number }>();
/** CA objects get an id, so a cache key never has to hold or hash a whole PEM. */
const caIds = new WeakMap<object, number>();
let nextCaId = 1;

function caKey(ca: ConnectionOptions["ca"]): string {
  if (ca === undefined) return "system";
  if (typeof ca === "string") return `pem:${ca.length}:${ca.slice(-64)}`;
  const obj = ca as object;
  let id = caIds.get(obj);
  if (id === undefined) {
    id = nextCaId++;
    caIds.set(obj, id);
  }
  return `obj:${id}`;
}

function keyOf(options: ConnectionOptions): string {
  // A session proves the certificate was checked the way this connection checks it: never reuse
  // one across trust anchors or from a connection that skipped verification.
  const verify = options.rejectUnauthorized === false ? "noverify" : "verify";
  return `${options.host ?? ""}:${options.port ?? ""}:${options.servername ?? ""}:${caKey(options.ca)}:${verify}`;
}

/**
 * `createConnection` for ws (wss URLs only): ws's own TLS connect plus the session cache. Uses the
 * server name rule ws uses (no SNI for an IP address).
 */
export function connectWithSessionReuse(options: ConnectionOptions & { path?: string }): TLSSocket {
  const opts: ConnectionOptions = { ...options, path: undefined } as ConnectionOptions;
  if (!opts.servername && opts.servername !== "") {
    opts.servername = opts.host && isIP(opts.host) === 0 ? opts.host : "";
  }
  const key = keyOf(opts);
  const cached = sessions.get(key);
  if (cached && Date.now() - cached.at < SESSION_MAX_AGE_MS) opts.session = cached.session;
  const socket = tlsConnect(opts);
  socket.on("session", (session: Buffer) => {
    if (sessions.size >= MAX_SESSIONS && !sessions.has(key)) sessions.clear();
    sessions.set(key, { session, at: Date.now() });
  });
  return socket;
}

/** Forgets every cached session (tests; a process that rotated its trust anchors). */
export function clearTlsSessions(): void {
  sessions.clear();
}

/** Sessions cached now (metrics, tests). */
export function cachedTlsSessions(): number {
  return sessions.size;
}
