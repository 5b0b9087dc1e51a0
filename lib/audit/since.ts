/**
 * `--since` / `?since=`: an ISO 8601 time (`2026-12-01T22:00:00Z`) or a span back from now
 * (`90s`, `15m`, `2h`, `7d`). One rule for the CLI (which refuses a bad value as a usage error
 * before calling anything) and the rollout API (which answers 400).
 */
const SPAN = /^(\d{1,6})([smhd])$/;
const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

export const SINCE_RULE =
  "an ISO 8601 time such as 2026-12-01T22:00:00Z, or a span back from now such as 90s, 15m, 2h or 7d";

/** The time `text` means, or undefined when it is neither form. */
export function parseSince(text: string, now: number = Date.now()): Date | undefined {
  const t = text.trim();
  const span = SPAN.exec(t);
  if (span) return new Date(now - Number(span[1]) * UNIT_MS[span[2] as keyof typeof UNIT_MS]);
  // A date alone (2026-12-01) or a full time; Date.parse takes other forms too, so check the shape.
  if (!/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?$/.test(t))
    return undefined;
  const ms = Date.parse(t);
  return Number.isNaN(ms) ? undefined : new Date(ms);
}
