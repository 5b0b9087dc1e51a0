/**
 * Everything rollout logic depends on, passed in (no globals): the Functions handlers, the CLI and
 * the simulation build one of these, tests build one with fakes or emulators.
 */
import type { GatewayStatus, PortLedger } from "../../../../lib/ledger/index.ts";
import type { Logger } from "../../../../lib/log.ts";
import type { RelayAdmin } from "../relay-admin/types.ts";
import type { FleetHub, JsonObject } from "./hub.ts";
import type { SiteProfiles } from "./schemas.ts";

/** Onboarding steps in order; tests inject a failure before each one. */
export const ONBOARD_STEPS = [
  "device",
  "module",
  "hybrid-connection",
  "rules",
  "ledger",
  "ports",
  "twin",
  "tags",
] as const;
export type OnboardStep = (typeof ONBOARD_STEPS)[number];

export interface RolloutOptions {
  /** Default mappings for new sites, by profile name. */
  profiles: SiteProfiles;
  /** Profile used when none is named (default "default"). */
  defaultProfile?: string;
  listenRuleName?: string;
  sendRuleName?: string;
  /**
   * How gateways authenticate to the relay: `entra` (their managed identity, Azure Relay Sender)
   * means no Send rule and no key in the ledger; `sas` (the default of this library call, kept
   * for callers that predate Entra ID; the app's settings default to `entra`) a Send rule per site.
   */
  relaySendAuth?: "entra" | "sas";
  /** Bounded wait for the module to report a rotated key (default 60 s). */
  rotateTimeoutMs?: number;
  /** Interval of the module-twin reads during that wait (default 500 ms; a GET, never a query). */
  rotatePollMs?: number;
  /** Time gateways get to reload the ledger before an old Send key is revoked (default 10 s). */
  sendKeyGraceMs?: number;
  /** Validates desired properties before they are written (the `lib/twin` schema). */
  validateDesired?: (desired: JsonObject) => void;
}

export interface RolloutDeps extends RolloutOptions {
  hub: FleetHub;
  relay: RelayAdmin;
  ledger: PortLedger;
  /** The gateways' status rows (lib/ledger/gateway-status.ts), for `status`. */
  gatewayStatuses?: () => Promise<GatewayStatus[]>;
  logger?: Logger;
  /** Test hook: called before each onboarding step (throw to simulate a crash there). */
  beforeStep?: (step: OnboardStep, siteId: string) => void | Promise<void>;
}

/**
 * The hybrid connection of a site's key generation: `site-<siteId>` at onboarding, then
 * `site-<siteId>.k<n>` after the n-th key rotation. Rotation moves a site to a new hybrid
 * connection and deletes the old one, because deleting it is what closes listeners that still
 * hold an old key (ADR 0009); site ids have no `.`, so the name parses back unambiguously.
 */
export const hybridConnectionOf = (siteId: string, generation = 0) =>
  generation === 0 ? `site-${siteId}` : `site-${siteId}.k${generation}`;

/** Site id and key generation of a hybrid connection name made by `hybridConnectionOf`. */
export function parseHybridConnection(name: string): { siteId: string; generation: number } | undefined {
  const m = /^site-([a-z0-9][a-z0-9-]*)(?:\.k([1-9][0-9]*))?$/.exec(name);
  return m?.[1] ? { siteId: m[1], generation: m[2] ? Number(m[2]) : 0 } : undefined;
}
export const listenRule = (deps: RolloutDeps) => deps.listenRuleName ?? "listen";
export const sendRule = (deps: RolloutDeps) => deps.sendRuleName ?? "send";
