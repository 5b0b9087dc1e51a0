/**
 * Named timers, sizes and policies of the Hybrid Connections client. Every one is a default the
 * caller can override; each says why it has the value it has.
 */

/** WebSocket ping on the control channel. Relays drop idle listeners after ~4 min (azure-relay#33). */
export const PING_INTERVAL_MS = 30_000;

/** A pong (or any frame) must arrive this long after a ping, or the peer is dead and we reconnect. */
export const PONG_TIMEOUT_MS = 10_000;

/** Opening handshake of the control channel, a sender connect or a rendezvous must finish within this. */
export const HANDSHAKE_TIMEOUT_MS = 20_000;

/** A sender gives up after this long (the relay itself holds a pending sender for at most 30 s). */
export const CONNECT_TIMEOUT_MS = 30_000;

/** The accept address expires at the relay after 30 s; opening the rendezvous must beat that. */
export const RENDEZVOUS_TIMEOUT_MS = 25_000;

/** Listener-side wait for the sender's preamble before closing the rendezvous. */
export const PREAMBLE_TIMEOUT_MS = 10_000;

/** Token lifetime: 2 h (hyco-ws's 1 h TTL races its own 1 h renewal, relay-protocol.md §3.6). */
export const TOKEN_TTL_SECONDS = 7_200;

/**
 * Renew when this fraction of the TTL has passed (60 min of a 2 h token): far enough ahead that a
 * lost renewal can be retried and a reconnect still has a valid token.
 */
export const TOKEN_RENEW_FRACTION = 0.5;

/** Exponential backoff with full-range jitter for control-channel reconnects. */
export interface BackoffPolicy {
  /** First retry delay. */
  initialMs: number;
  /** Ceiling of the delay. */
  maxMs: number;
  /** Multiplier per consecutive failure. */
  factor: number;
  /** 0..1: fraction of the delay randomised (0.5 = delay * [0.5, 1.0]). */
  jitter: number;
}

/**
 * 2 s doubling to 9 s, delays randomised down by up to 30 %: while the relay is down a listener
 * makes at most 10 attempts in any minute (the limit; worst case 1.4, 2.8, 5.6, then one
 * every 6.3–9 s), yet is back within ~9 s of the relay's return. Fleets of thousands of sites
 * still spread out: the steady period itself is jittered over a 2.7 s window.
 */
export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 2_000, maxMs: 9_000, factor: 2, jitter: 0.3 };

/** A connection that stayed online this long resets the backoff to its first step. */
export const BACKOFF_RESET_AFTER_MS = 60_000;

/** azbridge's pump chunk: frames are at most 64 KiB. */
export const MAX_FRAME_BYTES = 64 * 1024;

/** Backpressure bound: stop reading the source once this many bytes wait in the sink's buffer. */
export const PUMP_HIGH_WATER_BYTES = 1024 * 1024;

/** After we sent our close frame, the peer has this long to answer before the socket is destroyed. */
export const CLOSE_TIMEOUT_MS = 30_000;

/** Largest message accepted on a relayed WebSocket (the relay may carry up to 16 MB). */
export const MAX_PAYLOAD_BYTES = 16 * 1024 * 1024;

/** `Relay-User-Agent` header value, as the .NET SDK sends one. */
export const USER_AGENT = "relay-fleet/0.1";

/** Delay before attempt `n` (0-based) under `policy`; `random` is injectable for tests. */
export function backoffDelay(
  policy: BackoffPolicy,
  attempt: number,
  random: () => number = Math.random,
): number {
  const base = Math.min(policy.maxMs, policy.initialMs * policy.factor ** Math.max(0, attempt));
  const jitter = Math.min(1, Math.max(0, policy.jitter));
  return Math.round(base * (1 - jitter * random()));
}
