/**
 * Creates the relay listeners the reconciler runs: `RELAY_LISTENER_COUNT` control channels per
 * module instance on the site's hybrid connection, so one dropped channel never leaves the site
 * unreachable while it reconnects.
 */

import type { BackoffPolicy } from "../../../lib/hyco/constants.ts";
import type { Logger } from "../../../lib/log.ts";
import { InterimListener } from "./interim-listener.ts";
import type { ListenerFactory } from "./relay-listener-port.ts";

export interface ListenerFactoryOptions {
  ca: string | undefined;
  backoff: BackoffPolicy | undefined;
  logger: Logger;
}

export function createListenerFactory(opts: ListenerFactoryOptions): ListenerFactory {
  return (relay) => {
    const listener = new InterimListener({
      endpoint: relay.endpoint,
      hybridConnection: relay.hybridConnection,
      keyName: relay.sasKeyName,
      key: relay.sasKey,
      ...(opts.ca ? { ca: opts.ca } : {}),
      ...(opts.backoff ? { backoff: opts.backoff } : {}),
    });
    return listener;
  };
}
