/**
 * Named timers, sizes and policies of the Hybrid Connections client. Every one is a default the
 * caller can override; each says why it has the value it has.
 */

import type { BackoffPolicy } from "../backoff.ts";

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

/**
 * Reconnect backoff of the control channel (the project's one backoff, `lib/backoff.ts`): ceilings
 * 2.5 s, 5 s, then 9 s; each delay drawn from the upper half of its ceiling. Two bounds fix the
 * window: a listener retries on average fewer than 10 times a minute while the relay is down, and
 * is back within 9 s of its return, so a delay can be neither much shorter than 4.5 s nor longer
 * than 9 s in the steady state; full jitter (down to 0) would break the first, a longer ceiling the
 * second. Within those bounds the draw is as wide as it can be (ADR 0006), so a fleet that lost the
 * relay at one moment spreads its retries over the whole window from the first step on.
 */
export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 2_500, maxMs: 9_000, factor: 2, jitter: 0.5 };

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
