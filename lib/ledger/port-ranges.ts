/**
 * Public port ranges the rollout service allocates from, parsed from configuration such as
 * `RELAY_PORT_RANGES="40000-40999,50000"`.
 */
import { RelayFleetError } from "../errors.ts";

export interface PortRange {
  from: number;
  to: number;
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
