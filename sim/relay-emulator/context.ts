/**
 * What every handler of the emulator shares: options, namespace, counters, faults, live objects.
 * The files it names (control-channel.ts, fault-state.ts, …) never import it back: they take the
 * narrow parts they need, so there is no import circle through the context.
 */
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { WebSocketServer } from "ws";
import type { Logger } from "../../lib/log.ts";
import type { ControlChannel } from "./control-channel.ts";
import type { FaultState } from "./fault-state.ts";
import type { HybridConnection, Namespace } from "./namespace.ts";
import type { RelayEmulatorOptions } from "./options.ts";
import type { RelayPair } from "./relay-pair.ts";
import type { Stats } from "./stats.ts";

/** A sender whose upgrade is held until a listener accepts or rejects, or the address expires. */
export interface PendingRendezvous {
  /** `sb-hc-id` of the rendezvous address: the sender's id plus a secret suffix. */
  key: string;
  /** The `id` of the accept message. */
  id: string;
  hc: HybridConnection;
  req: IncomingMessage;
  socket: Duplex;
  head: Buffer;
  timer: NodeJS.Timeout;
  /** The sender's socket closed while waiting. */
  senderGone: boolean;
  listenerId: string;
  /** Stops watching the held socket and folds early bytes into `head`, before ws takes it over. */
  release?: () => void;
}

/** One upgrade request as the dispatcher parsed it. */
export interface UpgradeRequest {
  req: IncomingMessage;
  socket: Duplex;
  head: Buffer;
  /** Path after `/$hc/`, URL-decoded. */
  path: string;
  query: URLSearchParams;
  remoteAddress: string;
  remotePort: number;
}

export interface EmulatorContext {
  options: RelayEmulatorOptions;
  namespace: Namespace;
  stats: Stats;
  faults: FaultState;
  logger: Logger;
  scheme: "ws" | "wss";
  /** Control channels (no compression, small frames). */
  controlServer: WebSocketServer;
  /** Relay legs (no compression, big messages, no UTF-8 interpretation). */
  relayServer: WebSocketServer;
  rendezvous: Map<string, PendingRendezvous>;
  pairs: Set<RelayPair>;
  controlChannels: Set<ControlChannel>;
  /** Next listener for a sender (random, seeded or round-robin per options). */
  pickListener(hc: HybridConnection): ControlChannel | undefined;
}
