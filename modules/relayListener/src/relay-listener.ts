/**
 * What the module needs from a Hybrid Connections listener (`lib/hyco/listener.ts`'s
 * `HybridConnectionListener` satisfies it). The reconciler depends on this interface only, so
 * its fuzz test can run it against fakes.
 */
import type { WebSocket } from "ws";
import type { RelayConfig } from "../../../lib/twin/index.ts";

export interface ListenerStateView {
  status: "connecting" | "online" | "reconnecting" | "closed";
  lastError?: string;
  nextAttemptAt?: number;
  since: number;
}

export interface AcceptRequestView {
  readonly id?: string;
  accept(): Promise<WebSocket>;
  reject(status: number, description: string): Promise<void>;
}

export interface RelayListener {
  readonly state: ListenerStateView;
  start(): void;
  close(): Promise<void>;
  updateCredentials(keyName: string, key: string): void;
  on(event: "state", listener: (state: ListenerStateView) => void): unknown;
  on(event: "accept", listener: (request: AcceptRequestView) => void): unknown;
}

/** Creates listener number `index` (0-based) for a relay section. */
export type ListenerFactory = (relay: RelayConfig, index: number) => RelayListener;
