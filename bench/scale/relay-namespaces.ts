/**
 * As many relay namespaces as the rollout's placement needs for N sites (ADR 0025), each a relay
 * emulator process of its own (one namespace a process, and a process here may hold 20,000 file
 * descriptors, which 10,000 sites' 20,000 listener channels would fill alone), all with the same
 * Manage key so the rollout takes them from one `RELAY_NAMESPACES` list.
 */
import { randomBytes } from "node:crypto";
import { audienceFor, createSasToken } from "../../lib/hyco/sas.ts";
import { type BenchChild, startBenchChild } from "./child.ts";

/** ADR 0025's accounting with its defaults: one device a site, 2 listener channels, 16 standbys. */
export const SITE_CONNECTIONS = 1 * 2 + 16;
export const NAMESPACE_CONNECTIONS = 5_000;
export const MAX_FILL = 0.8;

/** Namespaces the rollout fills for `sites` sites (first fit in order, each to 80 %). */
export function namespacesFor(sites: number): number {
  const perNamespace = Math.floor((NAMESPACE_CONNECTIONS * MAX_FILL) / SITE_CONNECTIONS);
  return Math.max(1, Math.ceil(sites / perNamespace));
}

export interface NamespaceStats {
  url: string;
  /** Listener control channels and relayed connections held now (the namespace quota's count). */
  connections: number;
  listeners: number;
  refusedOverNamespaceQuota: number;
}

export interface RelayNamespaces {
  urls: string[];
  manageKeyName: string;
  manageKey: string;
  /** `GET /$admin/stats` of every namespace. */
  stats(): Promise<NamespaceStats[]>;
  close(): Promise<void>;
}

export async function startRelayNamespaces(count: number): Promise<RelayNamespaces> {
  const manageKey = randomBytes(32).toString("base64");
  const manageKeyName = "RootManageSharedAccessKey";
  const children: BenchChild[] = [];
  const close = async () => {
    await Promise.all(children.map((c) => c.stop()));
  };
  try {
    const urls: string[] = [];
    // A few at a time: each is a Node process starting up.
    for (let i = 0; i < count; i += 4) {
      const batch = Array.from({ length: Math.min(4, count - i) }, () => {
        const child = startBenchChild("sim/relay-emulator/main.ts", [], {
          RELAY_EMULATOR_MANAGE_KEY: manageKey,
        });
        children.push(child);
        return child.waitFor("listening", 120_000);
      });
      for (const line of await Promise.all(batch)) urls.push(String(line.url));
    }
    const stats = () =>
      Promise.all(
        urls.map(async (url) => {
          const token = createSasToken(audienceFor(url), manageKeyName, manageKey);
          const res = await fetch(`${url.replace(/^ws/, "http")}/$admin/stats`, {
            headers: { authorization: token },
          });
          if (!res.ok) throw new Error(`${url}: stats ${res.status} ${await res.text()}`);
          const s = (await res.json()) as {
            listeners: number;
            activeConnections: number;
            refusedOverNamespaceQuota: number;
          };
          return {
            url,
            connections: s.listeners + s.activeConnections,
            listeners: s.listeners,
            refusedOverNamespaceQuota: s.refusedOverNamespaceQuota,
          };
        }),
      );
    return { urls, manageKeyName, manageKey, stats, close };
  } catch (err) {
    await close();
    throw err;
  }
}
