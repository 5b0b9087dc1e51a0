/**
 * The light site (sim/light-site.ts) for gateway tests where the site is incidental: forwards each
 * logical port name to a TCP target on 127.0.0.1, started online and closed after the test.
 * A helper, not a test.
 */
import { LightSite } from "../../sim/light-site.ts";
import type { CleanupContext } from "../helpers/index.ts";

export interface SiteListenerOptions {
  /** The relay's endpoint (`ws://127.0.0.1:<port>` for the plain emulator). */
  endpoint: string;
  hybridConnection: string;
  keyName: string;
  key: string;
  /** Logical port name → target port on 127.0.0.1. */
  targets: Record<string, number>;
  /** Control channels, as the module's `RELAY_LISTENER_COUNT` (default 1). */
  channels?: number;
}

export type SiteListener = LightSite;

/** Starts the site's channels and resolves once the relay has every one online. */
export async function startSiteListener(
  t: CleanupContext,
  options: SiteListenerOptions,
): Promise<SiteListener> {
  const { targets, ...relay } = options;
  const site = new LightSite({ ...relay, streams: { targets } });
  t.after(() => site.close());
  await site.startOnline();
  return site;
}
