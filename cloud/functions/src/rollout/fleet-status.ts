/**
 * The fleet's status: one twin query for every site's module and one for the edge agents (what
 * each device's deployment runs), the ledger read with the gateways' own rules (a row no gateway
 * can serve shows as drift), and what the gateways report.
 */
import { EDGE_AGENT_MODULE_ID } from "../../../../lib/fleet-deployment.ts";
import { storageError } from "../../../../lib/ledger/index.ts";
import { readLedger } from "../../../../lib/ledger/read-routes.ts";
import type { RolloutDeps } from "./context.ts";
import { MODULE_ID } from "./desired-twin.ts";
import { bySiteId } from "./site-view.ts";
import {
  type GatewayView,
  type SiteStatus,
  siteStatusFromTwin,
  withDeploymentState,
  withGatewayDrift,
} from "./status.ts";

export async function fleetStatusView(
  deps: RolloutDeps,
): Promise<{ sites: SiteStatus[]; gateways: GatewayView[] }> {
  // The ledger is read with the gateway's own rules, so a row no gateway can serve shows here.
  const [twins, agentTwins, ledger, gateways] = await Promise.all([
    deps.hub.queryModuleTwins(MODULE_ID),
    // What each device's IoT Edge runtime runs (its deployment's state).
    deps.hub.queryModuleTwins(EDGE_AGENT_MODULE_ID),
    readLedger(deps.ledger.client).catch((err: unknown) => {
      throw storageError(err, deps.ledger.table);
    }),
    // No status table configured (tests, older deployments): no gateway reports.
    deps.gatewayStatuses ? deps.gatewayStatuses() : Promise.resolve([]),
  ]);
  const sites = withDeploymentState(
    twins
      .filter((t) => t.desired.relay !== undefined)
      .map(siteStatusFromTwin)
      .sort(bySiteId),
    agentTwins,
    MODULE_ID,
  );
  for (const p of ledger.problems) {
    const siteId = p.siteId ?? (p.partitionKey === "site" ? p.rowKey : undefined);
    const status = sites.find((st) => st.siteId === siteId);
    status?.drift.push(`ledger ${p.partitionKey} row ${p.rowKey} is unusable by the gateway: ${p.message}`);
  }
  return withGatewayDrift(sites, gateways, ledger.routes);
}
