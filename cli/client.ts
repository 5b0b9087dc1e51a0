/**
 * What the CLI commands call: the rollout HTTP API (simulation or a deployed app) or the rollout
 * logic in process (direct mode). Both answer with the same shapes.
 */
import { isErrorCode, RelayFleetError } from "../lib/errors.ts";
import type { Target } from "./discovery.ts";

export interface AuditQuery {
  site?: string;
  /** ISO time (the CLI turns spans like 15m into one). */
  since?: string;
  limit?: number;
}

export interface AuditAnswer {
  count: number;
  records: unknown[];
  sources: Array<{ name: string; ok: boolean; error?: string; dropped?: number }>;
}

function auditSearch(q: AuditQuery): URLSearchParams {
  const p = new URLSearchParams();
  if (q.site !== undefined) p.set("site", q.site);
  if (q.since !== undefined) p.set("since", q.since);
  if (q.limit !== undefined) p.set("limit", String(q.limit));
  return p;
}

export interface FleetClient {
  createSite(body: unknown): Promise<unknown>;
  listSites(): Promise<{ sites: unknown[] }>;
  getSite(id: string): Promise<unknown>;
  removeSite(id: string, deleteDevice: boolean): Promise<unknown>;
  /** Adds a mapping; the API answers 409 when the name exists. */
  addMapping(id: string, name: string, body: unknown): Promise<unknown>;
  /** Changes only the fields in `body`. */
  updateMapping(id: string, name: string, body: unknown): Promise<unknown>;
  /** Replaces a mapping whole (creates it when absent). */
  replaceMapping(id: string, name: string, body: unknown): Promise<unknown>;
  deleteMapping(id: string, name: string): Promise<unknown>;
  rotateKeys(id: string): Promise<unknown>;
  /** Joins a device to a site (absent id: the rollout names it). */
  addDevice(id: string, deviceId: string | undefined): Promise<unknown>;
  listDevices(id: string): Promise<unknown>;
  removeDevice(id: string, deviceId: string, deleteDevice: boolean): Promise<unknown>;
  /** Sites' status and, where the API has them, the gateways' own reports. */
  status(): Promise<{ sites: unknown[]; gateways?: unknown[]; warnings?: string[] }>;
  /** Moves a site to another relay namespace, keeping its public ports. */
  moveSite(id: string, namespace: string): Promise<unknown>;
  /** Each relay namespace's sites and connections against its quota. */
  relayNamespaces(): Promise<unknown>;
  /** Queues many sites as one onboarding job (`POST /api/onboarding-jobs`); the job as queued. */
  submitOnboarding(body: unknown): Promise<unknown>;
  /** An onboarding job's progress. */
  onboardingJob(jobId: string): Promise<unknown>;
  /** Tunnels' audit records, newest first, with a report per audit source. */
  audit(query: AuditQuery): Promise<AuditAnswer>;
  close(): Promise<void>;
}

function apiClient(url: string, key: string): FleetClient {
  const call = async (method: string, path: string, body?: unknown) => {
    let res: Response;
    try {
      res = await fetch(`${url.replace(/\/$/, "")}${path}`, {
        method,
        headers: { "x-functions-key": key, "content-type": "application/json" },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    } catch (err) {
      throw new RelayFleetError(
        "RF_ERR_CLI_UNREACHABLE",
        `The rollout API at ${url} is unreachable (${(err as Error).message}).`,
      );
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (!res.ok) {
      const e = (parsed as { error?: { code?: string; message?: string } } | undefined)?.error;
      const message = e?.message ?? `The rollout API answered HTTP ${res.status}.`;
      // The API's own code when this CLI knows it (its status comes with it), else RF_ERR_CLI_API
      // with the answer's status; an unknown code (a newer API) stays in the message.
      if (isErrorCode(e?.code)) throw new RelayFleetError(e.code, message);
      throw new RelayFleetError("RF_ERR_CLI_API", e?.code ? `${e.code}: ${message}` : message, {
        status: res.status,
      });
    }
    return parsed;
  };
  const enc = encodeURIComponent;
  return {
    createSite: (b) => call("POST", "/api/sites", b),
    listSites: async () => (await call("GET", "/api/sites")) as { sites: unknown[] },
    getSite: (id) => call("GET", `/api/sites/${enc(id)}`),
    removeSite: (id, d) => call("DELETE", `/api/sites/${enc(id)}${d ? "?deleteDevice=true" : ""}`),
    addMapping: (id, n, b) => call("POST", `/api/sites/${enc(id)}/mappings/${enc(n)}`, b),
    updateMapping: (id, n, b) => call("PATCH", `/api/sites/${enc(id)}/mappings/${enc(n)}`, b),
    replaceMapping: (id, n, b) => call("PUT", `/api/sites/${enc(id)}/mappings/${enc(n)}`, b),
    deleteMapping: (id, n) => call("DELETE", `/api/sites/${enc(id)}/mappings/${enc(n)}`),
    rotateKeys: (id) => call("POST", `/api/sites/${enc(id)}/rotate-keys`),
    addDevice: (id, d) =>
      call("POST", `/api/sites/${enc(id)}/devices`, d === undefined ? {} : { deviceId: d }),
    listDevices: (id) => call("GET", `/api/sites/${enc(id)}/devices`),
    removeDevice: (id, d, del) =>
      call("DELETE", `/api/sites/${enc(id)}/devices/${enc(d)}${del ? "?deleteDevice=true" : ""}`),
    status: async () =>
      (await call("GET", "/api/status")) as { sites: unknown[]; gateways?: unknown[]; warnings?: string[] },
    moveSite: (id, namespace) => call("POST", `/api/sites/${enc(id)}/move`, { namespace }),
    relayNamespaces: () => call("GET", "/api/relay-namespaces"),
    submitOnboarding: (b) => call("POST", "/api/onboarding-jobs", b),
    onboardingJob: (id) => call("GET", `/api/onboarding-jobs/${enc(id)}`),
    audit: async (q) => (await call("GET", `/api/audit?${auditSearch(q)}`)) as AuditAnswer,
    close: async () => {},
  };
}

async function directClient(): Promise<FleetClient> {
  const { rolloutFromEnv, auditSourcesFromEnv } = await import("../cloud/functions/src/config.ts");
  const { parseAuditQuery } = await import("../cloud/functions/src/audit/query.ts");
  const { readAudit } = await import("../cloud/functions/src/audit/sources.ts");
  const r = await rolloutFromEnv();
  return {
    createSite: async (b) => (await r.createSite(b)).site,
    listSites: async () => ({ sites: await r.listSites() }),
    getSite: (id) => r.getSite(id),
    removeSite: (id, deleteDevice) => r.removeSite(id, { deleteDevice }),
    addMapping: (id, n, b) => r.addMapping(id, n, b),
    updateMapping: (id, n, b) => r.updateMapping(id, n, b),
    replaceMapping: (id, n, b) => r.putMapping(id, n, b),
    deleteMapping: (id, n) => r.deleteMapping(id, n),
    rotateKeys: (id) => r.rotateKeys(id),
    addDevice: async (id, d) => (await r.addDevice(id, d === undefined ? {} : { deviceId: d })).site,
    listDevices: async (id) => {
      const site = await r.getSite(id);
      return { siteId: site.siteId, count: site.devices.length, devices: site.devices };
    },
    removeDevice: (id, d, deleteDevice) => r.removeDevice(id, d, { deleteDevice }),
    status: () => r.fleetView(),
    moveSite: (id, namespace) => r.moveSite(id, { namespace }),
    relayNamespaces: async () => {
      const namespaces = await r.relayNamespaces();
      return { count: namespaces.length, namespaces };
    },
    // In direct mode the job runs in this process, for as long as the CLI follows it.
    submitOnboarding: async (b) => r.onboarding.submit(b),
    onboardingJob: async (id) => {
      const job = r.onboarding.get(id);
      if (!job)
        throw new RelayFleetError("RF_ERR_ROLLOUT_JOB_NOT_FOUND", `Onboarding job ${id} is not known here.`);
      return job;
    },
    audit: (q) => readAudit(auditSourcesFromEnv(), parseAuditQuery(auditSearch(q))),
    close: async () => {},
  };
}

export function createFleetClient(target: Target): Promise<FleetClient> {
  return target.kind === "api" ? Promise.resolve(apiClient(target.url, target.functionKey)) : directClient();
}
