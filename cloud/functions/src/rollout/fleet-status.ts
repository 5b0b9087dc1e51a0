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

/** The fleet's status: each device's row, the gateways' reports, and warnings about the fleet as a whole. */
export interface FleetStatusView {
  sites: SiteStatus[];
  gateways: GatewayView[];
  warnings: string[];
}

/** How long the base deployment's fleet size is kept: a configurations read costs 1 of S1's 20 a minute. */
export const DEPLOYMENT_CHECK_CACHE_MS = 60_000;
const deploymentChecks = new WeakMap<
  RolloutDeps,
  { at: number; value: Promise<{ id: string; fleetSize: number | null } | undefined> }
>();

function baseDeploymentFleetSize(deps: RolloutDeps) {
  const read = deps.hub.baseDeploymentFleetSize;
  if (!read) return Promise.resolve(undefined);
  const cached = deploymentChecks.get(deps);
  if (cached && Date.now() - cached.at < DEPLOYMENT_CHECK_CACHE_MS) return cached.value;
  const value = read.call(deps.hub);
  deploymentChecks.set(deps, { at: Date.now(), value });
  value.catch(() => deploymentChecks.delete(deps));
  return value;
}

/**
 * A warning when the fleet has more relay modules than the base deployment's HUB_FLEET_SIZE:
 * the modules spread their reconnects after a hub outage over a period sized to that figure
 * (ADR 0027), so together they would open connections faster than the hub's quota allows.
 */
export async function fleetSizeWarnings(deps: RolloutDeps, relayModules: number): Promise<string[]> {
  let base: Awaited<ReturnType<typeof baseDeploymentFleetSize>>;
  try {
    base = await baseDeploymentFleetSize(deps);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    return [`the base deployment's HUB_FLEET_SIZE could not be checked: ${reason}`];
  }
  if (!base) return [];
  const size = base.fleetSize ?? 1;
  if (relayModules <= size) return [];
  return [
    `${relayModules} relay modules, but the base deployment ${base.id} tells them HUB_FLEET_SIZE=${base.fleetSize ?? "unset (1)"}: their reconnects after a hub outage would exceed the hub's new-connection quota; run relay-fleet deployment apply to size it to the fleet`,
  ];
}

export async function fleetStatusView(deps: RolloutDeps): Promise<FleetStatusView> {
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
  const warnings = await fleetSizeWarnings(deps, sites.length);
  return { ...withGatewayDrift(sites, gateways, ledger.routes), warnings };
}
