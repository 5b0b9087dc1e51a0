/**
 * One simulated site on the relay, cheap enough to hold thousands in one process: the module's
 * own listener factory (its control channels on their retry slots, ADR 0013) through lib/hyco,
 * answering every tunnel as a module would — the sender's logical-port preamble is read and
 * accepted — and then echoing the bytes back, in place of a TCP target.
 */
import type { WebSocket } from "ws";
import { RETRY_PERIOD_MS } from "../../lib/hyco/constants.ts";
import type { HybridConnectionListener } from "../../lib/hyco/listener.ts";
import { answerPreamble, readPreamble } from "../../lib/hyco/logical-port-listener.ts";
import type { Logger } from "../../lib/log.ts";
import { createListenerFactory } from "../../modules/relayListener/src/listener-factory.ts";

export interface EchoSiteOptions {
  endpoint: string;
  hybridConnection: string;
  keyName: string;
  key: string;
  /** Extra CA (PEM) of the relay's TLS. */
  ca?: string | undefined;
  /** Control channels (the module's RELAY_LISTENER_COUNT, default 2). */
  channels?: number;
  logger: Logger;
}

async function echo(ws: WebSocket): Promise<void> {
  const { reader } = await readPreamble(ws);
  answerPreamble(ws, true);
  // What came behind the preamble first, then live messages (attached in the same turn).
  for (const chunk of reader.release()) ws.send(chunk, { binary: true });
  ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
}

export class EchoSite {
  private readonly listeners: HybridConnectionListener[];
  /** Tunnels answered so far. */
  accepted = 0;

  constructor(readonly options: EchoSiteOptions) {
    const count = options.channels ?? 2;
    const factory = createListenerFactory({
      ca: options.ca,
      count,
      retryPeriodMs: RETRY_PERIOD_MS,
      logger: options.logger,
    });
    const relay = {
      endpoint: options.endpoint,
      hybridConnection: options.hybridConnection,
      sasKeyName: options.keyName,
      sasKey: options.key,
    } as Parameters<typeof factory>[0];
    this.listeners = Array.from(
      { length: count },
      (_, i) => factory(relay, i) as unknown as HybridConnectionListener,
    );
    for (const listener of this.listeners)
      listener.on("accept", (request) => {
        this.accepted++;
        request.accept().then(
          (ws) => echo(ws).catch(() => ws.terminate()),
          () => {},
        );
      });
  }

  /** Channels online now. */
  online(): number {
    return this.listeners.filter((l) => l.state.status === "online").length;
  }

  start(): void {
    for (const l of this.listeners) l.start();
  }

  async close(): Promise<void> {
    await Promise.all(this.listeners.map((l) => l.close()));
  }
}
