/**
 * Close codes on the relay's legs. The half-close itself (a relay must not answer a close frame
 * for the listener, relay-protocol.md §1.3) is `takeOverClose` in lib/hyco/ws-half-close.ts, the
 * one shim over ws internals, which the emulator shares with the pump.
 */

/** Codes a close frame may carry (RFC 6455 §7.4; ws throws on the others). */
export function isSendableCloseCode(code: number): boolean {
  return (
    Number.isInteger(code) &&
    ((code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) ||
      (code >= 3000 && code <= 4999))
  );
}
