/**
 * Source allowlists: a route's `allowCidrs` compiled once per reload, matched per connection.
 * Sockets on a dual-stack listener report IPv4 clients as `::ffff:a.b.c.d`; ipaddr.js `process`
 * turns those back into IPv4 so an IPv4 CIDR matches them (and an IPv6 CIDR never does by accident).
 */
import ipaddr from "ipaddr.js";
import { RelayFleetError } from "../../../lib/errors.ts";
import { type AllowRange, parseAllowEntry } from "../../../lib/ledger/cidr.ts";

export interface Allowlist {
  /** True when the list is empty (anyone) or the address falls in one of the ranges. */
  allows(address: string | undefined): boolean;
  readonly size: number;
}

/** Compiles CIDRs (or bare addresses = /32, /128). Throws `RF_ERR_GATEWAY_CIDR` for a bad entry. */
export function compileAllowlist(cidrs: readonly string[]): Allowlist {
  const ranges: AllowRange[] = [];
  for (const raw of cidrs) {
    try {
      ranges.push(parseAllowEntry(raw));
    } catch (err) {
      throw new RelayFleetError("RF_ERR_GATEWAY_CIDR", `'${raw}' is not a CIDR range or IP address`, {
        cause: err,
      });
    }
  }
  return {
    size: ranges.length,
    allows(address) {
      if (ranges.length === 0) return true;
      if (!address || !ipaddr.isValid(address)) return false;
      const addr = ipaddr.process(address);
      return ranges.some(([range, bits]) => range.kind() === addr.kind() && addr.match(range, bits));
    },
  };
}
