/**
 * Public port ranges the rollout service allocates from, parsed from configuration such as
 * `RELAY_PORT_RANGES="21000-21999,23000"`.
 */
import { RelayFleetError } from "../errors.ts";

export interface PortRange {
  from: number;
  to: number;
}

/**
 * Linux's default ephemeral range (`net.ipv4.ip_local_port_range`): the kernel gives these ports
 * to outgoing connections, and the gateway makes many (to the relay, to storage). A public port in
 * it can be taken by one of them before the gateway listens on it.
 */
export const LINUX_EPHEMERAL_RANGE: PortRange = { from: 32768, to: 60999 };

/**
 * Default public port range of a deployment: 1,000 ports below the ephemeral range, clear of the
 * well-known ports and of Kubernetes' NodePort range (30000-32767). A range inside the ephemeral
 * range needs `net.ipv4.ip_local_reserved_ports` on every gateway.
 */
export const DEFAULT_PUBLIC_PORT_RANGES = "21000-21999";

/** Ports of `ranges` that lie in `ephemeral`, as ranges (empty when none do). */
export function overlapWith(ranges: readonly PortRange[], ephemeral: PortRange): PortRange[] {
  return ranges
    .map((r) => ({ from: Math.max(r.from, ephemeral.from), to: Math.min(r.to, ephemeral.to) }))
    .filter((r) => r.from <= r.to);
}

/** Parses `"a-b,c"` into ranges; throws `RF_ERR_LEDGER_BAD_RANGE` with the bad part named. */
export function parsePortRanges(text: string): PortRange[] {
  const ranges: PortRange[] = [];
  for (const part of text
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean)) {
    const m = /^(\d{1,5})(?:\s*-\s*(\d{1,5}))?$/.exec(part);
    const from = Number(m?.[1]);
    const to = Number(m?.[2] ?? m?.[1]);
    if (!m || from < 1 || to > 65535 || from > to) {
      throw new RelayFleetError(
        "RF_ERR_LEDGER_BAD_RANGE",
        `Port range "${part}" is not valid: use "from-to" or a single port, within 1-65535.`,
      );
    }
    ranges.push({ from, to });
  }
  if (ranges.length === 0) {
    throw new RelayFleetError("RF_ERR_LEDGER_BAD_RANGE", "No public port range is configured.");
  }
  return ranges;
}

/** Every port of the ranges, in order, without duplicates. */
export function* portsOf(ranges: readonly PortRange[]): Generator<number> {
  const seen = new Set<number>();
  for (const r of ranges) {
    for (let p = r.from; p <= r.to; p++) {
      if (!seen.has(p)) {
        seen.add(p);
        yield p;
      }
    }
  }
}
