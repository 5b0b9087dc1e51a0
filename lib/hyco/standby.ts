/**
 * Standby connections: relayed WebSockets a sender opens ahead of need, so that a new logical
 * connection skips the relay's rendezvous (sender upgrade → accept on the control channel →
 * the listener's rendezvous socket → both upgrade answers). That rendezvous is most of a
 * connection's setup: four of the roughly twelve sequential process hops on loopback, and two to
 * three WAN round trips plus a TLS handshake at the edge in production.
 *
 * The protocol is our extension of the azbridge preamble (docs/adr/0005-standby-connections.md):
 *
 * - the sender opens a relayed connection and writes the preamble for the reserved port name
 *   `$standby` (no mapping name can contain `$`);
 * - a listener that keeps standbys answers `[1,0,0]`, then waits up to its standby idle time,
 *   instead of the preamble timeout, for the real preamble, and serves the connection as usual;
 * - an azbridge listener, or one at its standby limit, closes (as for an unknown port): the
 *   sender's pool stops asking for a while, so nothing breaks against listeners without it;
 * - the connection stays reusable: its streams end with an empty message each way (the pump's
 *   `reusable` mode) and it goes back to the standby state on both sides after each clean one.
 *
 * The sender retires standbys before the listener's idle limit (`maxAgeMs` < `idleMs`), so the
 * common case never hands out a connection the listener is about to close. Pools only stay warm
 * for `warmForMs` after the last use: a site nobody connects to costs no standby connections.
 */
/** The reserved logical port name of a standby connection. */
export const STANDBY_PORT_NAME = "$standby";

/** WebSocket close code a listener at its standby limit closes with ("try again later"). */
export const CLOSE_STANDBY_FULL = 1013;
