/** How a site looks to operators (the API and the CLI): its spec, where it is published, never a key. */
import type { RouteRow } from "../../../../lib/ledger/index.ts";
import type { MappingSpec, SiteSpec } from "./schemas.ts";
import type { SiteStatus } from "./status.ts";

/** Sites in natural order: plant-2 before plant-10 (what `sites list` and `status` show). */
const naturalCompare = new Intl.Collator("en", { numeric: true }).compare;
export const bySiteId = (a: { siteId: string }, b: { siteId: string }) => naturalCompare(a.siteId, b.siteId);

/** A mapping as operators see it: its spec plus where it is published. */
export interface MappingView extends MappingSpec {
  publicPort?: number;
  publicHost?: string;
}

/** One edge device of a site and, where asked for, its module's state from its own twin. */
export interface DeviceView {
  deviceId: string;
  module?: SiteStatus;
}

/** A site as the API and CLI show it (never any key). */
export interface SiteView {
  siteId: string;
  /** The site's first device (a site of one device: its device). */
  deviceId: string;
  /** Every device of the site (ADR 0014), in the order they joined. */
  devices: DeviceView[];
  profile: string;
  hybridConnection: string;
  relayEndpoint: string;
  createdAt: string;
  publicPorts: number[];
  mappings: Record<string, MappingView>;
}

/** A site's view from its spec, its ledger row and its routes. */
export function siteView(
  spec: SiteSpec,
  row: { hybridConnection: string; relayEndpoint: string; createdAt: string },
  routes: RouteRow[],
): SiteView {
  const mappings: Record<string, MappingView> = {};
  for (const [name, m] of Object.entries(spec.mappings)) {
    const r = routes.find((x) => x.portName === name);
    mappings[name] = {
      ...m,
      ...(r ? { publicPort: r.port } : {}),
      ...(r?.hostname ? { publicHost: r.hostname } : {}),
    };
  }
  return {
    siteId: spec.siteId,
    deviceId: spec.deviceIds[0] ?? spec.siteId,
    devices: spec.deviceIds.map((deviceId) => ({ deviceId })),
    profile: spec.profile,
    hybridConnection: row.hybridConnection,
    relayEndpoint: row.relayEndpoint,
    createdAt: row.createdAt,
    publicPorts: [...new Set(routes.map((r) => r.port))].sort((a, b) => a - b),
    mappings,
  };
}
