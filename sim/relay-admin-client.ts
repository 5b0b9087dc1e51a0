/**
 * Reads the relay emulator's counters (`GET /$admin/stats` over HTTPS, authorized with a SAS token
 * of the namespace's Manage rule). The live view and the tests use it; the rollout service has its
 * own relay administration (cloud/functions/src/relay).
 */
import { readFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { audienceFor, createSasToken } from "../lib/hyco/sas.ts";

export interface RelayInfo {
  url: string;
  endpoint: string;
  caFile: string;
  manageKeyName: string;
  manageKey: string;
}

/** The part of the relay emulator's stats the simulation and tests read. */
export interface RelayStatsView {
  listeners: number;
  listenAttempts: number;
  hybridConnections: Record<
    string,
    { listeners: number; listenAttempts: number; connects: number; accepts: number }
  >;
  [counter: string]: unknown;
}

export function readRelayStats(relay: RelayInfo): Promise<RelayStatsView> {
  const url = new URL("/$admin/stats", relay.url.replace(/^ws/, "http"));
  const token = createSasToken(audienceFor(relay.endpoint), relay.manageKeyName, relay.manageKey);
  const ca = readFileSync(relay.caFile);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ca, headers: { authorization: token }, agent: false }, (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (chunk: string) => {
        text += chunk;
      });
      res.on("end", () => {
        if (res.statusCode !== 200) reject(new Error(`relay stats answered ${res.statusCode}: ${text}`));
        else resolve(JSON.parse(text) as RelayStatsView);
      });
    });
    req.setTimeout(5_000, () => req.destroy(new Error("relay stats timed out")));
    req.on("error", reject);
    req.end();
  });
}
