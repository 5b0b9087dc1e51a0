/**
 * The one rule for a route's `allowCidrs` entries: a CIDR range (`10.0.0.0/8`, `fd00::/8`) or a
 * bare address (= /32 or /128). The rollout checks it where the list is written, the ledger reader
 * where a gateway reads it, and the gateway compiles it with the same parser, so an entry the API
 * accepted is always one the gateway can use.
 */
import ipaddr from "ipaddr.js";

export type AllowRange = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** Parses one entry; throws (ipaddr.js's error) when it is neither a CIDR range nor an address. */
export function parseAllowEntry(raw: string): AllowRange {
  const text = raw.trim();
  if (!text.includes("/")) {
    const addr = ipaddr.process(text);
    return [addr, addr.kind() === "ipv4" ? 32 : 128];
  }
  const [addr, bits] = ipaddr.parseCIDR(text);
  // A mapped IPv6 range (::ffff:10.0.0.0/104) means an IPv4 range; normalise it.
  if (addr.kind() === "ipv6" && (addr as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96)
    return [(addr as ipaddr.IPv6).toIPv4Address(), bits - 96];
  return [addr, bits];
}

/** True when `raw` is a usable allowlist entry. */
export function isAllowEntry(raw: string): boolean {
  try {
    parseAllowEntry(raw);
    return true;
  } catch {
    return false;
  }
}

export const ALLOW_ENTRY_RULE = "must be a CIDR range (10.0.0.0/8, fd00::/8) or an IP address";
