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
 *
 * It also builds the TLS context once per trust anchor. `tls.connect({ ca })` parses the PEM and
 * builds a fresh certificate store for every connection (the CPU profile of a burst of new
 * tunnels showed `createSecureContext` as the largest single item on both ends); a context made
 * once from the same CA checks exactly the same way.
 */

import { isIP } from "node:net";
import type { ConnectionOptions, SecureContext, TLSSocket } from "node:tls";
import { createSecureContext, connect as tlsConnect } from "node:tls";

/** Sessions kept at most (one per relay endpoint and CA in practice; bounded against odd callers). */
const MAX_SESSIONS = 256;

/**
 * A session older than this is not offered (the relay would refuse it and fall back to a full
 * handshake anyway; TLS 1.3 tickets from Node live 300 s by default, RFC 8446 allows up to 7 days).
 */
const SESSION_MAX_AGE_MS = 240_000;

const sessions = new Map<string, { session: Buffer; at: number }>();
/**
 * Each distinct trust anchor gets an id and, once, its TLS context. A PEM string is keyed by its
 * whole text (a Map compares strings by value); a Buffer or array by identity, since callers
 * read their CA file once and pass the same object every time.
 */
const anchorsByPem = new Map<string, TrustAnchor>();
const anchorsByObject = new WeakMap<object, TrustAnchor>();
let nextAnchorId = 1;

interface TrustAnchor {
  readonly id: number;
  context?: SecureContext;
}

/** Options that shape a TLS context beyond its CA: with any of them, the caller's own settings win. */
const CONTEXT_OPTIONS = [
  "secureContext",
  "cert",
  "key",
  "pfx",
  "passphrase",
  "ciphers",
  "ecdhCurve",
  "minVersion",
  "maxVersion",
  "secureProtocol",
  "secureOptions",
  "crl",
  "sigalgs",
  "dhparam",
  "privateKeyEngine",
  "privateKeyIdentifier",
] as const;

/** Bounded like the sessions: a caller minting a new PEM string per connection must not grow it. */
const MAX_PEM_ANCHORS = 64;

function trustAnchor(ca: NonNullable<ConnectionOptions["ca"]>): TrustAnchor {
  if (typeof ca === "string") {
    let anchor = anchorsByPem.get(ca);
    if (!anchor) {
      if (anchorsByPem.size >= MAX_PEM_ANCHORS) anchorsByPem.clear();
      anchor = { id: nextAnchorId++ };
      anchorsByPem.set(ca, anchor);
    }
    return anchor;
  }
  const obj = ca as object;
  let anchor = anchorsByObject.get(obj);
  if (!anchor) {
    anchor = { id: nextAnchorId++ };
    anchorsByObject.set(obj, anchor);
  }
  return anchor;
}

function caKey(ca: ConnectionOptions["ca"]): string {
  return ca === undefined ? "system" : `ca:${trustAnchor(ca).id}`;
}

/** The shared context for this CA, or undefined where the options ask for more than a CA. */
export function sharedTlsContext(options: ConnectionOptions): SecureContext | undefined {
  if (options.ca === undefined) return undefined;
  for (const name of CONTEXT_OPTIONS) if (options[name] !== undefined) return undefined;
  const anchor = trustAnchor(options.ca);
  anchor.context ??= createSecureContext({ ca: options.ca });
  return anchor.context;
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
  const context = sharedTlsContext(opts);
  if (context) opts.secureContext = context;
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
  anchorsByPem.clear();
}

/** Sessions cached now (metrics, tests). */
export function cachedTlsSessions(): number {
  return sessions.size;
}
