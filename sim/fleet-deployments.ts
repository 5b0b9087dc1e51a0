/**
 * The fleet's IoT Edge deployments in the simulation's hub: the base and retired at-scale
 * deployments from deployment.template.json, created with the code of `relay-fleet deployment
 * apply` (HUB_FLEET_SIZE sized from the devices the hub has, HUB_CONNECTS_PER_SECOND from the
 * hub's SKU), so what runs on each simulated device is the hub's business, as in production.
 */
import {
  applyFleetDeployments,
  buildFleetDeployments,
  countTargetedDevices,
  type FleetSizing,
  fleetSizing,
} from "../cli/deployment.ts";
import { errorMessage, RelayFleetError } from "../lib/errors.ts";
import { loadEnv } from "../scripts/genconfig.ts";
import { REPO_ROOT } from "./child-process.ts";
import type { HubRegistry } from "./hub-registry.ts";

/**
 * Applies the deployments. A saved state dir may hold a deployment of the same version with other
 * content (the template was edited): the simulation's own hub takes the new one.
 */
export async function applySimulationDeployments(
  registry: HubRegistry,
  progress: (step: string) => void,
  hub: { sku?: string; units?: number } = {},
): Promise<FleetSizing> {
  const devices = await countTargetedDevices(registry.service);
  const options = {
    devices,
    ...(hub.sku !== undefined ? { hubSku: hub.sku } : {}),
    ...(hub.units !== undefined ? { hubUnits: hub.units } : {}),
  };
  const build = (env: NodeJS.ProcessEnv) => {
    const sizing = fleetSizing(loadEnv(REPO_ROOT, env), options);
    return { sizing, deployments: buildFleetDeployments(REPO_ROOT, "amd64", env, sizing) };
  };
  let built: ReturnType<typeof build>;
  try {
    built = build(process.env);
  } catch (err) {
    // A developer's .env that the template cannot be expanded with: the example's values do.
    progress(`the deployment template does not expand with .env (${errorMessage(err)}): using .env.example`);
    built = build({ ...process.env, DOTENV_FILE: ".env.example" });
  }
  const { sizing, deployments } = built;
  progress(
    `fleet deployment: HUB_FLEET_SIZE ${sizing.fleetSize} (${devices} devices targeted), HUB_CONNECTS_PER_SECOND ${sizing.connectsPerSecond}`,
  );
  try {
    await applyFleetDeployments(registry.service, deployments);
  } catch (err) {
    if (!(err instanceof RelayFleetError && err.code === "RF_ERR_DEPLOYMENT")) throw err;
    for (const d of deployments) await registry.service.removeConfiguration(d.id).catch(() => undefined);
    await applyFleetDeployments(registry.service, deployments);
  }
  return sizing;
}
