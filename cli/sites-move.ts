/**
 * `relay-fleet sites move <site> --namespace X` and `relay-fleet sites namespaces` (ADR 0025):
 * a site to another relay namespace, keeping its public ports; each namespace's load.
 */
import type { FleetClient } from "./client.ts";
import { table } from "./format.ts";

interface NamespaceLoad {
  endpoint: string;
  sites: number;
  connections: number;
  quota: number;
  limit: number;
}

export async function moveSiteCommand(
  client: FleetClient,
  siteId: string,
  namespace: string,
  json: boolean,
): Promise<void> {
  const result = (await client.moveSite(siteId, namespace)) as {
    moved: boolean;
    from: string;
    to: string;
    devices: Array<{ deviceId: string; state: string }>;
  };
  if (json) {
    console.log(JSON.stringify(result, null, 2));
    return;
  }
  if (!result.moved) console.log(`${siteId} already is in ${result.to}; nothing changed`);
  else
    console.log(
      `${siteId} moved from ${result.from} to ${result.to}, public ports kept (${result.devices.map((d) => `${d.deviceId}: ${d.state}`).join(", ")})`,
    );
}

export async function namespacesCommand(client: FleetClient, json: boolean): Promise<void> {
  const { namespaces } = (await client.relayNamespaces()) as { namespaces: NamespaceLoad[] };
  if (json) {
    console.log(JSON.stringify(namespaces, null, 2));
    return;
  }
  console.log(
    table(
      ["NAMESPACE", "SITES", "CONNECTIONS", "LIMIT", "QUOTA"],
      namespaces.map((n) => [
        { text: n.endpoint },
        { text: String(n.sites) },
        { text: String(n.connections) },
        { text: String(n.limit) },
        { text: String(n.quota) },
      ]),
    ),
  );
}
