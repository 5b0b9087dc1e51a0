/**
 * `relay-fleet deployment apply`: creates the fleet's base IoT Edge at-scale deployment in IoT Hub
 * from deployment.template.json (expanded as `npm run manifests` / iotedgedev genconfig do), with
 * the target condition of lib/fleet-deployment.ts, and removes older base deployments. IoT Hub
 * treats a deployment's content as immutable, so a changed manifest needs a new module version
 * (a new id); re-applying an unchanged one is a no-op.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Registry } from "azure-iothub";
import { RelayFleetError } from "../lib/errors.ts";
import {
  BASE_DEPLOYMENT_PREFIX,
  baseDeployment,
  type EdgeDeployment,
  RETIRED_DEPLOYMENT_PREFIX,
  retiredDeployment,
} from "../lib/fleet-deployment.ts";
import { generateDeployment, loadEnv, readModules } from "../scripts/genconfig.ts";

export interface ApplyResult {
  deployments: Array<{
    id: string;
    action: "created" | "unchanged";
    targetCondition: string;
    priority: number;
  }>;
  /** Older fleet deployments removed after the new ones were created. */
  removed: string[];
}

/** The base and retired deployments the repository's template describes for `platform`. */
export function buildFleetDeployments(
  root: string,
  platform: string,
  processEnv = process.env,
): EdgeDeployment[] {
  const env = loadEnv(root, processEnv);
  const modules = readModules(root, env.MODULES_PATH || "modules", env);
  const template = env.DEPLOYMENT_CONFIG_TEMPLATE_FILE || "deployment.template.json";
  const manifest = generateDeployment(readFileSync(join(root, template), "utf8"), {
    platform,
    env,
    modules,
    templateName: template,
  }) as { modulesContent: Record<string, unknown> };
  const mod = modules.find((m) => m.name === "relayListener");
  if (!mod) throw new RelayFleetError("RF_ERR_DEPLOYMENT", "modules/relayListener/module.json is missing");
  const version = env.CONTAINER_TAG ? `${mod.version}-${env.CONTAINER_TAG}` : mod.version;
  return [
    baseDeployment(manifest, `${version}-${platform}`),
    retiredDeployment(manifest, `${version}-${platform}`),
  ];
}

const stable = (v: unknown): string =>
  JSON.stringify(v, (_k, x: unknown) =>
    x && typeof x === "object" && !Array.isArray(x)
      ? Object.fromEntries(
          Object.entries(x as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)),
        )
      : x,
  );

export async function applyFleetDeployments(
  registry: Registry,
  deployments: EdgeDeployment[],
  opts: { keepOld?: boolean } = {},
): Promise<ApplyResult> {
  const existing = (await registry.getConfigurations()).responseBody as unknown as Array<{
    id: string;
    content?: unknown;
    targetCondition?: string;
  }>;
  const result: ApplyResult = { deployments: [], removed: [] };
  // Check every one before creating any, so a conflict changes nothing.
  for (const d of deployments) {
    const same = existing.find((c) => c.id === d.id);
    if (same && (stable(same.content) !== stable(d.content) || same.targetCondition !== d.targetCondition)) {
      throw new RelayFleetError(
        "RF_ERR_DEPLOYMENT",
        `deployment ${d.id} exists with other content; IoT Hub deployments are immutable: bump the module version or CONTAINER_TAG`,
      );
    }
  }
  for (const d of deployments) {
    const same = existing.some((c) => c.id === d.id);
    if (!same) await registry.addConfiguration(d as unknown as Parameters<Registry["addConfiguration"]>[0]);
    result.deployments.push({
      id: d.id,
      action: same ? "unchanged" : "created",
      targetCondition: d.targetCondition,
      priority: d.priority,
    });
  }
  if (!opts.keepOld) {
    const wanted = new Set(deployments.map((d) => d.id));
    for (const c of existing) {
      const ours = c.id.startsWith(BASE_DEPLOYMENT_PREFIX) || c.id.startsWith(RETIRED_DEPLOYMENT_PREFIX);
      if (ours && !wanted.has(c.id)) {
        await registry.removeConfiguration(c.id);
        result.removed.push(c.id);
      }
    }
  }
  return result;
}
