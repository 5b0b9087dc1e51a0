/**
 * The simulation's own calls to the relay emulator's admin API over HTTPS, authorized with a SAS
 * token of the namespace's Manage rule: its counters (`GET /$admin/stats`, for the live view and
 * the tests) and the role assignments the infrastructure template makes in Azure (`PUT
 * /$admin/roleAssignments/{name}`). The rollout service has its own relay administration
 * (cloud/functions/src/relay-admin).
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

function adminCall(relay: RelayInfo, method: string, path: string, body?: unknown): Promise<string> {
  const url = new URL(path, relay.url.replace(/^ws/, "http"));
  const token = createSasToken(audienceFor(relay.endpoint), relay.manageKeyName, relay.manageKey);
  const ca = readFileSync(relay.caFile);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const headers = {
    authorization: token,
    ...(payload !== undefined ? { "content-type": "application/json" } : {}),
  };
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method, ca, headers, agent: false }, (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (chunk: string) => {
        text += chunk;
      });
      res.on("end", () => {
        const status = res.statusCode ?? 0;
        if (status < 200 || status > 299)
          reject(new Error(`relay ${method} ${url.pathname} answered ${status}: ${text}`));
        else resolve(text);
      });
    });
    req.setTimeout(5_000, () => req.destroy(new Error(`relay ${method} ${url.pathname} timed out`)));
    req.on("error", reject);
    req.end(payload);
  });
}

export async function readRelayStats(relay: RelayInfo): Promise<RelayStatsView> {
  return JSON.parse(await adminCall(relay, "GET", "/$admin/stats")) as RelayStatsView;
}

/** Assigns an Azure Relay role (by role definition id) to a principal at the namespace. */
export async function putRelayRoleAssignment(
  relay: RelayInfo,
  name: string,
  assignment: { principalId: string; roleDefinitionId: string; scope?: string },
): Promise<void> {
  await adminCall(relay, "PUT", `/$admin/roleAssignments/${encodeURIComponent(name)}`, assignment);
}
