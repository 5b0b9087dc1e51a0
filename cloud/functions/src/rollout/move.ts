/**
 * Moving a site to another relay namespace (`relay-fleet sites move <site> --namespace X`,
 * ADR 0025): the site gets a new hybrid connection with new keys in the target namespace, its
 * modules move there (the rollout waits for each connected one to report the new key), then the
 * ledger row names the new namespace, so the gateways follow it, and the old hybrid connection
 * goes. It is a key rotation into another namespace (rotate.ts) and keeps everything else: the
 * site's routes, and with them its public ports, are not touched.
 */
import { RelayFleetError } from "../../../../lib/errors.ts";
import type { RolloutDeps } from "./context.ts";
import type { RelayNamespace } from "./namespace-types.ts";
import { namespaceLoads, namespacesOf, placeSite } from "./namespaces.ts";
import { devicesOfRow } from "./offboard.ts";
import { type RotateResult, rotateSiteKeys } from "./rotate.ts";

export interface MoveResult {
  siteId: string;
  from: string;
  to: string;
  /** False when the site already was in that namespace (nothing done). */
  moved: boolean;
  devices: RotateResult["devices"];
}

/** The configured namespace `name` names: its endpoint, its host, or the host's first label. */
export function findNamespace(deps: RolloutDeps, name: string): RelayNamespace {
  const wanted = name.trim().toLowerCase().replace(/\/+$/, "");
  const all = namespacesOf(deps);
  const found = all.find((n) => {
    const endpoint = n.admin.endpoint.toLowerCase().replace(/\/+$/, "");
    let host = "";
    try {
      host = new URL(endpoint).host;
    } catch {
      host = endpoint;
    }
    return endpoint === wanted || host === wanted || host.split(".")[0] === wanted;
  });
  if (found) return found;
  throw new RelayFleetError(
    "RF_ERR_ROLLOUT_NAMESPACE_UNKNOWN",
    `No relay namespace "${name.slice(0, 120)}" is configured; the rollout's namespaces are ${all.map((n) => n.admin.endpoint).join(", ")}.`,
  );
}

/** Moves the site to `target` within the target's fill limit (call under the site's lock). */
export async function moveSite(
  deps: RolloutDeps,
  siteId: string,
  target: RelayNamespace,
): Promise<MoveResult> {
  const row = await deps.ledger.getSite(siteId);
  if (!row) throw new RelayFleetError("RF_ERR_ROLLOUT_SITE_NOT_FOUND", `Site ${siteId} does not exist.`);
  const to = target.admin.endpoint;
  if (row.relayEndpoint === to) return { siteId, from: to, to, moved: false, devices: [] };
  let placement: Awaited<ReturnType<typeof placeSite>>;
  try {
    placement = await placeSite(deps, siteId, devicesOfRow(row).length, { only: to });
  } catch (err) {
    const loads = await namespaceLoads(deps);
    const load = loads.find((l) => l.endpoint === to);
    throw new RelayFleetError(
      "RF_ERR_ROLLOUT_RELAY_FULL",
      `Namespace ${to} has no room for site ${siteId} within its fill limit (${load?.connections ?? "?"} of ${load?.limit ?? "?"} connections placed); nothing was changed.`,
      { cause: err },
    );
  }
  let moved = false;
  try {
    const result = await rotateSiteKeys(deps, siteId, { to: target.admin });
    moved = true;
    return { siteId, from: row.relayEndpoint, to, moved: true, devices: result.devices };
  } finally {
    placement.release(moved);
  }
}
