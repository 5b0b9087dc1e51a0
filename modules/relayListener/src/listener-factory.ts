/**
 * Creates the relay listeners the reconciler runs (`lib/hyco/listener.ts`):
 * `RELAY_LISTENER_COUNT` control channels per module instance on the site's hybrid connection, so
 * one dropped channel never leaves the site unreachable while it reconnects.
 *
 * The channels also share the reconnect budget in time: each retries once per period, on slots
 * spread evenly over it (`phasesApart`, one random draw per module), so after a relay outage one
 * of them is due within period / count of the relay's return while each stays within its
 * 10 attempts a minute (ADR 0013).
 */
import { phasesApart } from "../../../lib/backoff.ts";
import { HybridConnectionListener } from "../../../lib/hyco/listener.ts";
import type { Logger } from "../../../lib/log.ts";
import type { ListenerFactory, RelayListener } from "./relay-listener.ts";

export interface ListenerFactoryOptions {
  ca: string | undefined;
  /** Channels per module instance (`RELAY_LISTENER_COUNT`): their retry slots are spread over the period. */
  count: number;
  /** Reconnect period of each channel (`RELAY_RETRY_PERIOD_MS`; tests shorten it). */
  retryPeriodMs: number;
  logger: Logger;
  random?: () => number;
}

export function createListenerFactory(opts: ListenerFactoryOptions): ListenerFactory {
  // One draw per module: a new relay section (new listeners, same indices) keeps the spread.
  const phases = phasesApart(Math.max(1, opts.count), opts.random);
  return (relay, index) => {
    const listener = new HybridConnectionListener({
      endpoint: relay.endpoint,
      hybridConnection: relay.hybridConnection,
      keyName: relay.sasKeyName,
      key: relay.sasKey,
      logger: opts.logger.child({ listener: index }),
      retry: { periodMs: opts.retryPeriodMs, phase: phases[index % phases.length] ?? 0 },
      ...(opts.ca ? { ca: opts.ca } : {}),
    });
    return listener as RelayListener;
  };
}
