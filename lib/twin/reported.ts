/**
 * Reported properties of `relayListener`: what the module runs, as the rollout service and
 * operators read it. Sent as twin patches (throttled and coalesced by the module); a mapping that
 * disappears is patched to `null`, which deletes it from the reported section.
 */
import type { TwinError } from "./validate.ts";

export type ListenerStatus = "connecting" | "online" | "reconnecting" | "closed";

export interface ReportedListener {
  /** Instance index within this module (0 … RELAY_LISTENER_COUNT-1). */
  id: string;
  status: ListenerStatus;
  /** ISO time the listener entered this status. */
  since: string;
  lastError?: string | null;
  /** ISO time of the next reconnect attempt while reconnecting. */
  nextAttemptAt?: string | null;
}

export interface ReportedRelay {
  /** `online` when at least one listener is online; `unconfigured` without a relay section. */
  status: "online" | "connecting" | "reconnecting" | "offline" | "unconfigured";
  endpoint: string | null;
  hybridConnection: string | null;
  keyName: string | null;
  /** `keyFingerprint(sasKey)` (lib/hyco/sas.ts): proves which key runs without revealing it. */
  keyFingerprint: string | null;
  listeners: ReportedListener[];
}

/**
 * `active`: accepting; `disabled`: `enabled: false`; `draining`: removed/disabled with live
 * connections finishing; `refused`: the local allowlist refuses the target (the cloud cannot
 * override it); `error`: the last connection to the target failed (it keeps accepting).
 */
export type MappingState = "active" | "disabled" | "draining" | "refused" | "error";

export interface ReportedMapping {
  state: MappingState;
  target: string;
  activeConnections: number;
  totalConnections: number;
  /** Connections refused (limit reached, target unreachable, allowlist). */
  rejectedConnections: number;
  /** Bytes from the relay to the target. */
  bytesIn: number;
  /** Bytes from the target to the relay. */
  bytesOut: number;
  lastError: string | null;
}

export interface ReportedProperties {
  schemaVersion: string;
  moduleVersion: string;
  /** `$version` of the desired document last applied (partly, when `errors` is not empty). */
  appliedDesiredVersion: number | null;
  /** `running`, or `offline` after SIGTERM. */
  status: "running" | "offline";
  startedAt: string;
  updatedAt: string;
  relay: ReportedRelay;
  mappings: Record<string, ReportedMapping>;
  /** Parts of the desired document rejected, with path and reason (local refusals included). */
  errors: TwinError[];
  /**
   * The module's IoT Hub reconnect slot (ADR 0031): its phase in the fleet's spread period, and
   * whether the twin assigned it (`hubReconnect.phase`) or the module drew it itself.
   */
  hubReconnect?: { phase: number; origin: "assigned" | "random"; periodMs: number };
}

/**
 * Reported patch (a JSON merge patch of ReportedProperties): only what changed, down to single
 * fields of a mapping or the relay; a removed mapping is `null` (twin delete).
 */
export type ReportedPatch = Omit<Partial<ReportedProperties>, "mappings" | "relay"> & {
  relay?: Partial<ReportedRelay>;
  mappings?: Record<string, Partial<ReportedMapping> | null>;
};

/** At most this many errors are reported (reported properties are limited to 32 KB). */
export const MAX_REPORTED_ERRORS = 20;

/** A mapping's `lastError` is cut to this many characters in reported properties. */
export const MAX_REPORTED_MAPPING_ERROR = 80;
