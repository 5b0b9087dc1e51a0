/** `relay-fleet audit`: the tunnels' audit records from both ends, newest first (docs/audit.md). */
import { type Command, InvalidArgumentError } from "commander";
import type { AuditRecord } from "../../lib/audit/index.ts";
import { parseSince, SINCE_RULE } from "../../lib/audit/since.ts";
import { paint, table, useColor } from "../format.ts";
import { print, withClient } from "./shared.ts";

function since(value: string): string {
  const at = parseSince(value);
  if (!at) throw new InvalidArgumentError(`must be ${SINCE_RULE}`);
  return at.toISOString();
}

function limit(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 1000)
    throw new InvalidArgumentError("must be an integer from 1 to 1000");
  return n;
}

function duration(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

export function registerAuditCommand(program: Command): void {
  program
    .command("audit")
    .description(
      "Tunnels' audit records, newest first: who reached which site and mapping, from where, bytes, duration and how each ended",
    )
    .option("--site <siteId>", "only this site's tunnels")
    .option(
      "--since <time>",
      "only tunnels that ended since: an ISO time, or a span back such as 15m, 2h, 7d",
      since,
    )
    .option("--limit <n>", "at most this many records (default 200, at most 1000)", limit)
    .option("--json", "JSON output (the array of records)")
    .addHelpText(
      "after",
      `
Each tunnel has a record from each end: SIDE gateway (the public port, the client's address as
the gateway saw it) and SIDE module (the on-prem target; the client from PROXY v2 where enabled).
In the simulation the modules' records come from the IoT Hub emulator's kept messages and the
gateways' from their logs; in Azure they are in the hub's storage route and the gateways'
container logs, and the rollout service answers 501 (docs/audit.md).`,
    )
    .action((o: { site?: string; since?: string; limit?: number; json?: boolean }) =>
      withClient(async (c) => {
        const answer = await c.audit({
          ...(o.site !== undefined ? { site: o.site } : {}),
          ...(o.since !== undefined ? { since: o.since } : {}),
          ...(o.limit !== undefined ? { limit: o.limit } : {}),
        });
        // A source that could not be read is said on stderr, so it never passes as "no records".
        for (const s of answer.sources) {
          if (!s.ok)
            console.error(`relay-fleet: warning: audit source ${s.name} could not be read: ${s.error}`);
          else if (s.dropped)
            console.error(`relay-fleet: warning: ${s.name} dropped ${s.dropped} record(s) under load`);
        }
        const records = answer.records as AuditRecord[];
        if (o.json) return print(records);
        if (records.length === 0) {
          console.log("No audit records.");
          return;
        }
        const color = useColor();
        console.log(
          table(
            [
              "TIME",
              "SIDE",
              "SITE",
              "DEVICE",
              "MAPPING",
              "CLIENT",
              "PUBLIC / TARGET",
              "IN",
              "OUT",
              "DURATION",
              "END",
            ],
            records.map((r) => {
              const end = r.reason ? `${r.end} (${r.reason})` : r.end;
              const where =
                r.side === "gateway"
                  ? r.publicPort === undefined
                    ? "-"
                    : `${r.publicHost ? `${r.publicHost}:` : "port "}${r.publicPort}`
                  : (r.target ?? "-");
              return [
                { text: r.time },
                { text: r.side },
                { text: r.site ?? "-" },
                { text: r.device ?? "-" },
                { text: r.mapping },
                { text: r.client ?? "-" },
                { text: where },
                { text: String(r.bytesIn) },
                { text: String(r.bytesOut) },
                { text: duration(r.durationMs) },
                {
                  text: end,
                  ...(r.end === "completed"
                    ? {}
                    : { styled: paint(color, r.end === "refused" ? "red" : "yellow", end) }),
                },
              ];
            }),
          ),
        );
      }),
    );
}
