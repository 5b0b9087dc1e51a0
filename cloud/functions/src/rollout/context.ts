/**
 * Everything rollout logic depends on, passed in (no globals): the Functions handlers, the CLI and
 * the simulation build one of these, tests build one with fakes or emulators.
 */
import type { GatewayStatus, PortLedger } from "../../../../lib/ledger/index.ts";
import type { Logger } from "../../../../lib/log.ts";
import type { RelayAdmin } from "../relay-admin/types.ts";
import type { FleetHub, JsonObject } from "./hub.ts";
import type { NamespacePolicy, RelayNamespace } from "./namespace-types.ts";
import type { OnboardingQueueOptions } from "./onboarding-options.ts";
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
  /** Batches, concurrency and retries of onboarding jobs (onboarding-queue.ts). */
  onboarding?: OnboardingQueueOptions;
  /** Validates desired properties before they are written (the `lib/twin` schema). */
  validateDesired?: (desired: JsonObject) => void;
}

export interface RolloutDeps extends RolloutOptions {
  hub: FleetHub;
  /** The relay namespace (the first of `relayNamespaces` when several are configured). */
  relay: RelayAdmin;
  /**
   * Every namespace new sites may be placed in, in order, with its connection quota
   * (namespaces.ts); absent: `relay` alone, with Azure Relay's default quota.
   */
  relayNamespaces?: RelayNamespace[];
  /** Connections a site is counted for, and the fill limit per namespace. */
  namespacePolicy?: Partial<NamespacePolicy>;
  ledger: PortLedger;
  /** The gateways' status rows (lib/ledger/gateway-status.ts), for `status`. */
  gatewayStatuses?: () => Promise<GatewayStatus[]>;
  logger?: Logger;
  /** Test hook: called before each onboarding step (throw to simulate a crash there). */
  beforeStep?: (step: OnboardStep, siteId: string) => void | Promise<void>;
}

// Where the names are made and parsed (the module reads its site back from them).
export { hybridConnectionOf, parseHybridConnection } from "../../../../lib/ledger/hybrid-connection.ts";

export const listenRule = (deps: RolloutDeps) => deps.listenRuleName ?? "listen";
export const sendRule = (deps: RolloutDeps) => deps.sendRuleName ?? "send";
