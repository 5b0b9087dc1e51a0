/**
 * The fleet's IoT Edge deployments in the simulation's hub: the base and retired at-scale
 * deployments from deployment.template.json, created with the code of `relay-fleet deployment
 * apply`, so what runs on each simulated device is the hub's business, as in production.
 */
import { applyFleetDeployments, buildFleetDeployments } from "../cli/deployment.ts";
import { errorMessage, RelayFleetError } from "../lib/errors.ts";
import { REPO_ROOT } from "./child-process.ts";
import type { HubRegistry } from "./hub-registry.ts";

/**
 * Applies the deployments. A saved state dir may hold a deployment of the same version with other
 * content (the template was edited): the simulation's own hub takes the new one.
 */
export async function applySimulationDeployments(
  registry: HubRegistry,
  progress: (step: string) => void,
): Promise<void> {
  let built: ReturnType<typeof buildFleetDeployments>;
  try {
    built = buildFleetDeployments(REPO_ROOT, "amd64", process.env);
  } catch (err) {
    // A developer's .env that the template cannot be expanded with: the example's values do.
    progress(`the deployment template does not expand with .env (${errorMessage(err)}): using .env.example`);
    built = buildFleetDeployments(REPO_ROOT, "amd64", { ...process.env, DOTENV_FILE: ".env.example" });
  }
  try {
    await applyFleetDeployments(registry.service, built);
  } catch (err) {
    if (!(err instanceof RelayFleetError && err.code === "RF_ERR_DEPLOYMENT")) throw err;
    for (const d of built) await registry.service.removeConfiguration(d.id).catch(() => undefined);
    await applyFleetDeployments(registry.service, built);
  }
}
