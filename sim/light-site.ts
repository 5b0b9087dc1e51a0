/**
 * A light stand-in for a site, cheap enough to hold thousands in one process (the load generator)
 * and quick to start in a gateway test where the site is incidental (several gateway instances,
 * circuit breaker, rate limits, relay outages): the module's own listener factory (its control
 * channels, each on its retry slot, ADR 0013) and the module's own listener side of the
 * logical-port layer (`readLogicalPort`, `acceptStream`, `refuseStream` from
 * lib/hyco/logical-port-listener.ts, same reader, same close codes). What it does with a stream
 * is the only part of its own: echo the bytes back, or forward each logical port name to a TCP
 * target on 127.0.0.1. It keeps no standby connections (a `$standby` is refused as the module
 * without standbys refuses it). Tests about what the site does (byte-exact transfer, TLS
 * passthrough, PROXY v2, standbys) run the real relayListener module instead.
 */
import { connect, type Socket } from "node:net";
import type { WebSocket } from "ws";
import { RETRY_PERIOD_MS } from "../lib/hyco/constants.ts";
import { HeaderReader } from "../lib/hyco/header-reader.ts";
import type { HybridConnectionListener } from "../lib/hyco/listener.ts";
import {
  acceptStream,
  CLOSE_CODES,
  readLogicalPort,
  refuseStream,
} from "../lib/hyco/logical-port-listener.ts";
import { startPump } from "../lib/hyco/pump.ts";
import { createLogger, type Logger } from "../lib/log.ts";
import { createListenerFactory } from "../modules/relayListener/src/listener-factory.ts";

/** What the site does with an accepted stream: echo it, or forward logical port name → 127.0.0.1:port. */
export type LightSiteStreams = "echo" | { targets: Record<string, number> };

export interface LightSiteOptions {
  /** The relay's endpoint (`ws://127.0.0.1:<port>` for the plain emulator). */
  endpoint: string;
  hybridConnection: string;
  keyName: string;
  key: string;
  /** Extra CA (PEM) of the relay's TLS. */
  ca?: string | undefined;
  /** Control channels, as the module's `RELAY_LISTENER_COUNT` (default 1). */
  channels?: number | undefined;
  streams: LightSiteStreams;
  logger?: Logger | undefined;
}

function connectTarget(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: "127.0.0.1", noDelay: true });
    socket.once("connect", () => {
      socket.off("error", reject);
      socket.on("error", () => {}); // the pump reports it
      resolve(socket);
    });
    socket.once("error", reject);
  });
}

export class LightSite {
  private readonly listeners: HybridConnectionListener[];
  private readonly logger: Logger;
  /** WebSockets and target sockets still open, ended on close. */
  private readonly open = new Set<WebSocket | Socket>();
  private readonly attempts: number[][];
  private readonly online: number[] = [];
  /** Relayed connections accepted so far. */
  accepted = 0;

  constructor(readonly options: LightSiteOptions) {
    const count = options.channels ?? 1;
    this.logger = options.logger ?? createLogger("site", { level: "silent" });
    const factory = createListenerFactory({
      ca: options.ca,
      count,
      retryPeriodMs: RETRY_PERIOD_MS,
      logger: this.logger,
    });
    const relay = {
      endpoint: options.endpoint,
      hybridConnection: options.hybridConnection,
      sasKeyName: options.keyName,
      sasKey: options.key,
    } as Parameters<typeof factory>[0];
    // The factory builds lib/hyco listeners; the attempt and state events are theirs.
    this.listeners = Array.from(
      { length: count },
      (_, i) => factory(relay, i) as unknown as HybridConnectionListener,
    );
    this.attempts = this.listeners.map(() => []);
    for (const [i, listener] of this.listeners.entries()) {
      listener.on("attempt", () => this.attempts[i]?.push(performance.now()));
      listener.on("state", (s) => {
        if (s.status === "online") this.online.push(performance.now());
      });
      listener.on("accept", (request) => {
        this.accepted++;
        request.accept().then(
          (ws) => this.serve(ws).catch(() => ws.terminate()),
          () => {},
        );
      });
    }
  }

  /** Channels online now. */
  channelsOnline(): number {
    return this.listeners.filter((l) => l.state.status === "online").length;
  }

  start(): void {
    for (const l of this.listeners) l.start();
  }

  /** Starts the channels and resolves once the relay has every one online. */
  async startOnline(timeoutMs = 15_000): Promise<void> {
    const online = this.listeners.map(
      (listener) =>
        new Promise<void>((resolve, reject) => {
          const timer = setTimeout(
            () => reject(new Error(`site listener not online in ${timeoutMs / 1000} s`)),
            timeoutMs,
          );
          const onState = (state: { status: string }) => {
            if (state.status !== "online") return;
            clearTimeout(timer);
            listener.off("state", onState);
            resolve();
          };
          listener.on("state", onState);
        }),
    );
    this.start();
    await Promise.all(online);
  }

  /** Times (performance.now(), the clock of the retry slots) of each channel's connect attempts. */
  attemptTimes(channel?: number): number[] {
    return channel === undefined
      ? this.attempts.flat().sort((a, b) => a - b)
      : [...(this.attempts[channel] ?? [])];
  }

  /** Times (performance.now()) any channel came online. */
  onlineTimes(): number[] {
    return [...this.online];
  }

  /** Each channel's retry slot. */
  retrySlots(): Array<{ periodMs: number; phase: number }> {
    return this.listeners.map((l) => l.retrySlot);
  }

  async close(): Promise<void> {
    await Promise.all(this.listeners.map((l) => l.close()));
    for (const s of this.open) "terminate" in s ? s.terminate() : s.destroy();
  }

  private track(s: WebSocket | Socket): void {
    this.open.add(s);
    s.once("close", () => this.open.delete(s));
  }

  private async serve(ws: WebSocket): Promise<void> {
    this.track(ws);
    const reader = new HeaderReader(ws);
    const request = await readLogicalPort(ws, reader, { logger: this.logger });
    if (!request) {
      reader.release();
      return;
    }
    const streams = this.options.streams;
    if (streams === "echo") {
      acceptStream(ws);
      // What came behind the preamble first, then live messages (attached in the same turn).
      for (const chunk of reader.release()) ws.send(chunk, { binary: true });
      ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
      return;
    }
    const port = streams.targets[request.portName];
    if (port === undefined) {
      reader.release();
      refuseStream(ws, CLOSE_CODES.policy, "no such logical port");
      return;
    }
    let socket: Socket;
    try {
      socket = await connectTarget(port);
    } catch {
      reader.release();
      refuseStream(ws, CLOSE_CODES.targetFailed, "target unreachable");
      return;
    }
    this.track(socket);
    acceptStream(ws);
    await startPump(ws, socket, { initialData: reader.release() }).done;
  }
}
