/**
 * The simulation's client of the rollout HTTP API (function key in `x-functions-key`), as the CLI
 * and an operator's script call it.
 */

/** What the rollout API answers for a site (the fields the simulation uses). */
export interface SiteView {
  siteId: string;
  deviceId: string;
  /** Every edge device of the site (a redundant site has several), in the order they joined. */
  devices: Array<{ deviceId: string }>;
  publicPorts: number[];
  mappings: Record<string, { target: string; enabled: boolean; publicPort?: number; publicHost?: string }>;
}

/** Error answered by the rollout API, with its status. */
export class RolloutApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
  ) {
    super(`rollout API answered ${status}: ${JSON.stringify(body)}`);
  }
}

export class RolloutClient {
  constructor(
    readonly url: string,
    readonly functionKey: string,
  ) {}

  /** Calls the API; throws RolloutApiError on a non-2xx answer. */
  async call<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${this.url}${path}`, {
      method,
      headers: { "x-functions-key": this.functionKey, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    const parsed: unknown = text ? JSON.parse(text) : undefined;
    if (!res.ok) throw new RolloutApiError(res.status, parsed);
    return parsed as T;
  }
}

/** Mapping name → public port of a site view. */
export function publicPortsOf(view: SiteView): Record<string, number> {
  const ports: Record<string, number> = {};
  for (const [name, m] of Object.entries(view.mappings))
    if (m.publicPort !== undefined) ports[name] = m.publicPort;
  return ports;
}
