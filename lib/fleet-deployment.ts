/**
 * The one place that says which devices the fleet's IoT Edge deployments target: the device
 * tag the rollout writes when it onboards a site (`tags.relayFleet.siteId`, see
 * cloud/functions/src/rollout/apply.ts) and the deployments built on it. The rollout, the CLI's
 * `deployment apply` and the docs take the names from here, so the base deployment's target
 * condition matches exactly the devices the rollout onboards.
 *
 * Roll-out of a new module version (docs/deployment.md):
 * - the base deployment `relay-fleet-base-<version>` (edgeAgent, edgeHub, relayListener from
 *   deployment.template.json) targets every onboarded device at BASE_PRIORITY;
 * - a ring first: set `tags.relayFleet.ring` on some devices and create a layered deployment
 *   (manifests/layered-deployment.relay-listener.example.json) with `ringCondition(ring)` at
 *   RING_PRIORITY that sets only the module's image;
 * - then `relay-fleet deployment apply` with the new version: it creates the new base
 *   deployment (content is immutable in IoT Hub, so a new version is a new id) and deletes the
 *   older base deployments; on a priority tie IoT Hub applies the newest.
 */
import { z } from "zod";

/** The IoT Edge runtime's module whose twin carries a device's deployment and its reported state. */
export const EDGE_AGENT_MODULE_ID = "$edgeAgent";

/**
 * The device twin tag the rollout writes on every device of a site
 * (`tags.relayFleet = { siteId, profile, publicPorts }`): all devices of a redundant site carry
 * the same value, so the base deployment targets each of them (ADR 0014).
 */
export const FLEET_TAG = "relayFleet";

/** The value of `tags.relayFleet` as the rollout writes it. */
export interface FleetTag {
  siteId: string;
  profile: string;
  publicPorts: number[];
}

/** The tag value for a device of `siteId` (one place that names the tag's fields). */
export function fleetTag(siteId: string, profile: string, publicPorts: readonly number[]): FleetTag {
  return { siteId, profile, publicPorts: [...new Set(publicPorts)].sort((a, b) => a - b) };
}

/**
 * What a device's tags say about the site it belongs to: the tag's presence, and the site id
 * and profile when they are strings (a device created by DPS or by hand may carry only some).
 */
export function readFleetTag(tags: unknown): { tagged: boolean; siteId?: string; profile?: string } {
  const t = z.record(z.string(), z.unknown()).safeParse(tags);
  if (!t.success || !Object.hasOwn(t.data, FLEET_TAG)) return { tagged: false };
  const v = z
    .object({
      siteId: z.string().optional().catch(undefined),
      profile: z.string().optional().catch(undefined),
    })
    .catch({})
    .parse(t.data[FLEET_TAG]);
  return {
    tagged: true,
    ...(v.siteId !== undefined ? { siteId: v.siteId } : {}),
    ...(v.profile !== undefined ? { profile: v.profile } : {}),
  };
}

/** Target condition of the base deployment: every device the rollout has onboarded. */
export const FLEET_TARGET_CONDITION = `IS_DEFINED(tags.${FLEET_TAG}.siteId)`;

/** Ring tag a layered deployment targets (set by operators; the rollout never writes it). */
export const RING_TAG = `tags.${FLEET_TAG}.ring`;

/**
 * Set by the rollout when it offboards a device that stays in IoT Hub. IoT Hub leaves a device's
 * modules running when no deployment targets it any more, so an offboarded device needs a
 * deployment of its own to lose the module: the retired deployment (edgeAgent and edgeHub only).
 */
export const RETIRED_TAG = "relayFleetRetired";
export const RETIRED_TARGET_CONDITION = `IS_DEFINED(tags.${RETIRED_TAG})`;

export const BASE_DEPLOYMENT_PREFIX = "relay-fleet-base-";
export const RETIRED_DEPLOYMENT_PREFIX = "relay-fleet-retired-";
export const BASE_PRIORITY = 10;
/** Below the base: a re-onboarded device that still carries the retired tag gets the module. */
export const RETIRED_PRIORITY = 5;
export const RING_PRIORITY = 20;

/** Target condition of a ring's layered deployment. */
export function ringCondition(ring: string): string {
  if (!/^[a-z0-9-]{1,32}$/.test(ring)) throw new Error(`ring '${ring}' must be 1-32 of a-z, 0-9, -`);
  return `${FLEET_TARGET_CONDITION} AND ${RING_TAG}='${ring}'`;
}

/** Deployment id for a module version: IoT Hub ids allow a-z, 0-9 and -_.:+%'!*$@ (lower case). */
export function baseDeploymentId(version: string, prefix = BASE_DEPLOYMENT_PREFIX): string {
  return `${prefix}${version.toLowerCase().replace(/[^a-z0-9-]/g, "-")}`;
}

export interface EdgeDeployment {
  id: string;
  schemaVersion: "1.0";
  priority: number;
  targetCondition: string;
  labels: Record<string, string>;
  content: { modulesContent: Record<string, unknown> };
  metrics: { queries: Record<string, string> };
}

/**
 * The base at-scale deployment for a generated manifest (`npm run manifests` / genconfig). With
 * the fleet's figures (the HUB_FLEET_SIZE and HUB_CONNECTS_PER_SECOND the manifest carries), the
 * id names them too (`…-f500-c95`): a deployment's content is immutable, and a new fleet size is
 * new content under the same module version.
 */
export function baseDeployment(
  manifest: { modulesContent: Record<string, unknown> },
  version: string,
  fleet?: { fleetSize: number; connectsPerSecond: number },
): EdgeDeployment {
  return {
    id: baseDeploymentId(fleet ? `${version}-f${fleet.fleetSize}-c${fleet.connectsPerSecond}` : version),
    schemaVersion: "1.0",
    priority: BASE_PRIORITY,
    targetCondition: FLEET_TARGET_CONDITION,
    labels: {
      app: "relay-fleet",
      role: "base",
      version,
      ...(fleet
        ? { fleetSize: String(fleet.fleetSize), connectsPerSecond: String(fleet.connectsPerSecond) }
        : {}),
    },
    content: { modulesContent: manifest.modulesContent },
    metrics: {
      queries: {
        relayOnline:
          "SELECT deviceId FROM devices.modules WHERE moduleId = 'relayListener' AND properties.reported.relay.status = 'online'",
      },
    },
  };
}

/** The retired deployment: the same runtime, no relayListener and no routes. */
export function retiredDeployment(
  manifest: { modulesContent: Record<string, unknown> },
  version: string,
): EdgeDeployment {
  const content = structuredClone(manifest.modulesContent) as Record<
    string,
    Record<string, Record<string, unknown>>
  >;
  const agent = content.$edgeAgent?.["properties.desired"];
  if (agent) agent.modules = {};
  const hub = content.$edgeHub?.["properties.desired"];
  if (hub) hub.routes = {};
  return {
    id: baseDeploymentId(version, RETIRED_DEPLOYMENT_PREFIX),
    schemaVersion: "1.0",
    priority: RETIRED_PRIORITY,
    targetCondition: RETIRED_TARGET_CONDITION,
    labels: { app: "relay-fleet", role: "retired", version },
    content: { modulesContent: { $edgeAgent: content.$edgeAgent ?? {}, $edgeHub: content.$edgeHub ?? {} } },
    metrics: { queries: {} },
  };
}

const deploymentFleetSizeSchema = z.object({
  modulesContent: z.object({
    $edgeAgent: z.object({
      "properties.desired": z.object({
        modules: z.object({
          relayListener: z.object({
            env: z.record(z.string(), z.object({ value: z.unknown() }).partial()).optional(),
          }),
        }),
      }),
    }),
  }),
});

/**
 * The HUB_FLEET_SIZE a deployment's content gives the relayListener modules: `null` when it names
 * none (the module then takes 1), undefined when the content has no relayListener at all.
 */
export function deploymentFleetSize(content: unknown): number | null | undefined {
  const parsed = deploymentFleetSizeSchema.safeParse(content);
  if (!parsed.success) return undefined;
  const raw =
    parsed.data.modulesContent.$edgeAgent["properties.desired"].modules.relayListener.env?.HUB_FLEET_SIZE
      ?.value;
  const n = Number(raw);
  return raw === undefined || raw === "" || !Number.isInteger(n) || n < 1 ? null : n;
}
