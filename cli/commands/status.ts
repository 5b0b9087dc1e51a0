/** `relay-fleet status`: the fleet table, a row per device, and gateways that cannot serve. */
import type { Command } from "commander";
import { paint, table, useColor } from "../format.ts";
import { print, type StatusRow, withClient } from "./shared.ts";

interface GatewayRow {
  instanceId: string;
  updatedAt: string;
  stale: boolean;
  ready: boolean;
  listening: number;
  unbound: Array<{ port: number; error: string }>;
}

/** `running 0.1.0-amd64`: the runtime status and the image tag the device's deployment runs. */
function deploymentText(r: StatusRow): string {
  const tag = r.image?.split("/").pop()?.split(":")[1];
  return `${r.deployment ?? "-"}${tag ? ` ${tag}` : ""}`;
}

export function registerStatusCommand(program: Command): void {
  program
    .command("status")
    .description(
      "Fleet table from the module twins and each device's edge agent (its deployment's state; two IoT Hub queries): a row per device of each site",
    )
    .option("--json", "JSON output")
    .action((o: { json?: boolean }) =>
      withClient(async (c) => {
        const status = await c.status();
        const rows = status.sites as StatusRow[];
        // Fleet-wide warnings (the deployment's HUB_FLEET_SIZE below the fleet) on stderr, so
        // --json stays the array of sites (a port a gateway cannot bind is in its site's drift).
        for (const w of status.warnings ?? []) console.error(`warning: ${w}`);
        if (o.json) return print(rows);
        const color = useColor();
        console.log(
          table(
            ["SITE", "DEVICE", "DEPLOYMENT", "LISTENER", "MAPPINGS", "ACTIVE", "LAST ERROR", "DRIFT"],
            rows.map((r) => [
              { text: r.siteId },
              { text: r.deviceId },
              {
                text: deploymentText(r),
                styled: paint(color, r.deployment === "running" ? "green" : "yellow", deploymentText(r)),
              },
              {
                text: r.listenerStatus,
                styled: paint(color, r.listenerOnline ? "green" : "red", r.listenerStatus),
              },
              { text: String(r.mappings) },
              { text: String(r.activeConnections) },
              {
                text: r.lastError ?? "-",
                ...(r.lastError ? { styled: paint(color, "yellow", r.lastError) } : {}),
              },
              {
                text: r.drift.join("; ") || "none",
                ...(r.drift.length ? { styled: paint(color, "yellow", r.drift.join("; ")) } : {}),
              },
            ]),
          ),
        );
        const gateways = (status.gateways ?? []) as GatewayRow[];
        if (gateways.some((g) => g.stale || g.unbound.length > 0 || !g.ready)) {
          console.log("");
          console.log(
            table(
              ["GATEWAY", "STATE", "LISTENING", "NOT LISTENING"],
              gateways.map((g) => {
                const state = g.stale ? `not seen since ${g.updatedAt}` : g.ready ? "ready" : "not ready";
                const unbound = g.unbound.map((u) => `${u.port}: ${u.error}`).join("; ") || "-";
                return [
                  { text: g.instanceId },
                  { text: state, styled: paint(color, g.stale || !g.ready ? "red" : "green", state) },
                  { text: String(g.listening) },
                  { text: unbound, ...(g.unbound.length ? { styled: paint(color, "red", unbound) } : {}) },
                ];
              }),
            ),
          );
        }
      }),
    );
}
