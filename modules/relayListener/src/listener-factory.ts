/**
 * Creates the relay listeners the reconciler runs (`lib/hyco/listener.ts`):
 * `RELAY_LISTENER_COUNT` control channels per module instance on the site's hybrid connection, so
 * one dropped channel never leaves the site unreachable while it reconnects.
 */
import type { BackoffPolicy } from "../../../lib/backoff.ts";
import { HybridConnectionListener } from "../../../lib/hyco/listener.ts";
import type { Logger } from "../../../lib/log.ts";
import type { ListenerFactory, RelayListenerPort } from "./relay-listener-port.ts";

export interface ListenerFactoryOptions {
  ca: string | undefined;
  /** Overrides of the listener's default reconnect backoff (tests shorten it). */
  backoff: Partial<BackoffPolicy> | undefined;
  logger: Logger;
}

export function createListenerFactory(opts: ListenerFactoryOptions): ListenerFactory {
  return (relay, index) => {
    const listener = new HybridConnectionListener({
      endpoint: relay.endpoint,
      hybridConnection: relay.hybridConnection,
      keyName: relay.sasKeyName,
      key: relay.sasKey,
      logger: opts.logger.child({ listener: index }),
      ...(opts.ca ? { ca: opts.ca } : {}),
      ...(opts.backoff ? { backoff: opts.backoff } : {}),
    });
    return listener as RelayListenerPort;
  };
}
