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

/**
 * Reconnect period of one control channel: it retries at a fixed rate, once per period on its own
 * slot (`RetrySlots` in `lib/backoff.ts`, ADR 0013). 6 s is the shortest period that keeps the
 * bound of at most 10 connect attempts per listener per minute while the relay is down; a site's
 * channels take slots spread evenly over the period (the module's two: 3 s apart), so one of
 * them is due within 3 s of the relay's return, whatever the moment.
 */
export const RETRY_PERIOD_MS = 6_000;

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
