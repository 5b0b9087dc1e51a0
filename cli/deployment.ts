/**
 * `relay-fleet deployment apply`: creates the fleet's base IoT Edge at-scale deployment in IoT Hub
 * from deployment.template.json (expanded as `npm run manifests` / iotedgedev genconfig do), with
 * the target condition of lib/fleet-deployment.ts, and removes older base deployments. IoT Hub
 * treats a deployment's content as immutable, so a changed manifest needs a new module version
 * (a new id); re-applying an unchanged one is a no-op.
 *
 * The base deployment tells the relayListener modules the fleet's size and their share of the
 * hub's new-connection quota (HUB_FLEET_SIZE, HUB_CONNECTS_PER_SECOND; ADR 0027). The size is
 * counted here from the devices the deployment targets and rounded up to a step, so it changes
 * (a new deployment, every module restarted) only when the fleet has grown past it; both figures
 * are in the base deployment's id.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Registry } from "azure-iothub";
import { z } from "zod";
import { envOptionalInt, parseEnv } from "../lib/env.ts";
import { RelayFleetError } from "../lib/errors.ts";
import {
  BASE_DEPLOYMENT_PREFIX,
  baseDeployment,
  type EdgeDeployment,
  FLEET_TARGET_CONDITION,
  RETIRED_DEPLOYMENT_PREFIX,
  retiredDeployment,
} from "../lib/fleet-deployment.ts";
import { hubSkuSchema, relayConnectsPerSecond, sizedFleet } from "../lib/hub-fleet-size.ts";
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

/** What the base deployment tells the modules about the fleet (ADR 0027). */
export interface FleetSizing {
  /** HUB_FLEET_SIZE. */
  fleetSize: number;
  /** HUB_CONNECTS_PER_SECOND. */
  connectsPerSecond: number;
}

const sizingEnvSchema = z.object({
  HUB_FLEET_SIZE: envOptionalInt(1, 10_000_000),
  HUB_CONNECTS_PER_SECOND: envOptionalInt(1, 1_000_000),
  IOTHUB_SKU: z
    .string()
    .optional()
    .transform((v) => (v === "" ? undefined : v))
    .pipe(hubSkuSchema.optional()),
  IOTHUB_UNITS: envOptionalInt(1, 200),
});

/**
 * The fleet's figures from the configuration (`.env`, the environment, the CLI's options) and,
 * when known, the number of devices the deployment targets: HUB_FLEET_SIZE at least the configured
 * one and a quarter above the devices, rounded up to 500 (lib/hub-fleet-size.ts);
 * HUB_CONNECTS_PER_SECOND 95 % of the new-connection quota of the hub's SKU and units when the
 * SKU is given, else the configured figure (default S1's 95).
 */
export function fleetSizing(
  env: Record<string, string | undefined>,
  options: { devices?: number; fleetSize?: number; hubSku?: string; hubUnits?: number } = {},
): FleetSizing {
  const v = parseEnv(
    sizingEnvSchema,
    {
      ...env,
      ...(options.fleetSize !== undefined ? { HUB_FLEET_SIZE: String(options.fleetSize) } : {}),
      ...(options.hubSku !== undefined ? { IOTHUB_SKU: options.hubSku } : {}),
      ...(options.hubUnits !== undefined ? { IOTHUB_UNITS: String(options.hubUnits) } : {}),
    },
    "RF_ERR_DEPLOYMENT",
    "",
  );
  return {
    fleetSize: sizedFleet(options.devices ?? 0, v.HUB_FLEET_SIZE ?? 0),
    connectsPerSecond: v.IOTHUB_SKU
      ? relayConnectsPerSecond(v.IOTHUB_SKU, v.IOTHUB_UNITS ?? 1)
      : (v.HUB_CONNECTS_PER_SECOND ?? relayConnectsPerSecond("S1", v.IOTHUB_UNITS ?? 1)),
  };
}

/** How many devices the base deployment targets: one IoT Hub query (`SELECT COUNT()`). */
export async function countTargetedDevices(registry: Registry): Promise<number> {
  const query = registry.createQuery(
    `SELECT COUNT() AS devices FROM devices WHERE ${FLEET_TARGET_CONDITION}`,
  );
  const { result } = await query.next();
  const parsed = z
    .array(z.object({ devices: z.number().int().min(0) }))
    .length(1)
    .safeParse(result);
  if (!parsed.success)
    throw new RelayFleetError("RF_ERR_DEPLOYMENT", "IoT Hub's device count query answered no count");
  return parsed.data[0]?.devices ?? 0;
}

/**
 * The base and retired deployments the repository's template describes for `platform`, the base
 * one with the fleet's figures (`sizing`; without it, sized from the configuration alone).
 */
export function buildFleetDeployments(
  root: string,
  platform: string,
  processEnv = process.env,
  sizing?: FleetSizing,
): EdgeDeployment[] {
  const loaded = loadEnv(root, processEnv);
  const figures = sizing ?? fleetSizing(loaded);
  const env: Record<string, string | undefined> = {
    ...loaded,
    HUB_FLEET_SIZE: String(figures.fleetSize),
    HUB_CONNECTS_PER_SECOND: String(figures.connectsPerSecond),
  };
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
    baseDeployment(manifest, `${version}-${platform}`, figures),
    retiredDeployment(manifest, `${version}-${platform}`),
  ];
}

/**
 * The deployments for the fleet as it is in `registry`'s hub: HUB_FLEET_SIZE sized from the
 * devices the base deployment targets (counted now) and the configuration.
 */
export async function buildSizedFleetDeployments(
  registry: Registry,
  root: string,
  platform: string,
  processEnv = process.env,
  options: { fleetSize?: number; hubSku?: string; hubUnits?: number } = {},
): Promise<{ deployments: EdgeDeployment[]; devices: number; sizing: FleetSizing }> {
  const devices = await countTargetedDevices(registry);
  const sizing = fleetSizing(loadEnv(root, processEnv), { ...options, devices });
  return { deployments: buildFleetDeployments(root, platform, processEnv, sizing), devices, sizing };
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
