/**
 * The simulation's options and the handles it gives its callers (npm start, the end-to-end tests,
 * the benchmarks) for each gateway, site and module it runs.
 */

import type { HubSku } from "../lib/hub-fleet-size.ts";
import type { NodeProcessSpec, RunningProcess } from "./child-process.ts";
import type { DemoServices } from "./demo-services.ts";
import type { SiteView } from "./rollout-client.ts";
import type { PartEvent } from "./supervisor.ts";

/** The module the fleet's deployment runs on every edge device. */
export const MODULE_ID = "relayListener";

export interface FleetOptions {
  /** Where state, certificates and logs go. */
  stateDir: string;
  /** Demo sites to onboard at start (`plant-1` … `plant-N`). */
  sites?: number;
  /** Gateway instances, on 127.0.0.1, 127.0.0.2, … (the same public ports on each). */
  gateways?: number;
  /**
   * Edge devices per demo site, each its own IoT Edge device with its own relayListener module
   * identity, twin and process (two = a redundant pair): `plant-1`, `plant-1.2`, ….
   */
  modulesPerSite?: number;
  /** Public ports the rollout service allocates from (default: a free block found at start). */
  portRange?: { from: number; to: number };
  /** How often gateways re-read the ledger (they are also told to reload after each change). */
  ledgerReloadMs?: number;
  /** Called with a short line for each step, for progress output. */
  onProgress?: (step: string) => void;
  /** Extra environment for module processes (tests shorten timers). */
  moduleEnv?: NodeJS.ProcessEnv;
  /**
   * Start a part that exits on its own again, like IoT Edge's `restartPolicy: always` (npm start);
   * for modules, the edge agents follow their deployment's restart policy then. Off by default:
   * fault tests kill and restart parts (modules with `startModule`) themselves.
   */
  restartCrashed?: boolean;
  /** Each crash and restart of a part (whether or not `restartCrashed` is on). */
  onPartEvent?: (event: PartEvent) => void;
  /** First restart delay after a crash (doubles per crash in a row). */
  restartDelayMs?: number;
  /**
   * IoT Hub's published throttles the hub emulator enforces (registry operations, connections,
   * twin reads and updates, queries, configurations), for this SKU and unit count. `npm start`
   * runs with S1 × 1, the smallest production hub, so the simulation does what production would.
   * Absent: unthrottled. The e2e tests run unthrottled on purpose (their suites restart hubs and
   * onboard sites quickly, on a shared machine), except the npm start tests, which run npm start's
   * default; the Azure Relay emulator enforces its namespace quotas always.
   */
  hubQuotas?: { sku: HubSku; units: number };
}

export interface GatewayHandle {
  index: number;
  host: string;
  adminPort: number;
  process: RunningProcess;
}

export interface SiteModuleHandle {
  /** Position of the device in the site's device list when the module started. */
  index: number;
  /** The edge device this module runs on (its own module identity and twin). */
  deviceId: string;
  process: RunningProcess;
  healthPort: number | undefined;
}

export interface SiteHandle {
  siteId: string;
  /** The site's own demo services; absent for a site added from outside (CLI, device event). */
  services?: DemoServices;
  /** The site's edge devices, as the rollout API last listed them. */
  devices: string[];
  /** One module per device, in the order of `devices`. */
  modules: SiteModuleHandle[];
  /** Mapping name → public port on the gateways. */
  publicPorts: Record<string, number>;
  /** Mapping name → target and public port, as the rollout API last answered. */
  mappings: SiteView["mappings"];
  /** Extra environment of this site's module processes (over `FleetOptions.moduleEnv`). */
  moduleEnv?: NodeJS.ProcessEnv;
}

/** How the simulation starts one of its parts: spawned, logged, and its steps reported. */
export interface PartLauncher {
  /** Starts the process and registers it with the simulation (stop() ends it). */
  spawn(spec: NodeProcessSpec): Promise<RunningProcess>;
  /** `<stateDir>/logs/<part>.log`. */
  logFile(part: string): string;
  progress(step: string): void;
}
