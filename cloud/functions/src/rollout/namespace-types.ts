/**
 * What the rollout is told about its relay namespaces (ADR 0025), apart from the placement logic
 * in namespaces.ts, so the rollout's dependencies (context.ts) can name them without importing
 * the code that uses those dependencies.
 */
import type { RelayAdmin } from "../relay-admin/types.ts";

export interface RelayNamespace {
  admin: RelayAdmin;
  /** Concurrent connections the namespace allows. */
  connections: number;
}

export interface NamespacePolicy {
  listenerChannels: number;
  standbyConnections: number;
  /** Fraction of a namespace's connections the rollout fills, at most. */
  maxFill: number;
  /** How long a ledger-derived load is trusted (default 30 s). */
  refreshMs: number;
}
