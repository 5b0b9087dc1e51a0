/**
 * {@link RelayAdmin} over the relay emulator's ARM-like HTTP admin API (`/$admin/...` on the
 * emulator's own port, authorized by a namespace-level Manage rule's SAS token).
 */
import http from "node:http";
import https from "node:https";
import { RelayFleetError } from "../../../../lib/errors.ts";
import { audienceFor, createSasToken } from "../../../../lib/hyco/sas.ts";
import { parseEndpoint } from "../../../../lib/hyco/urls.ts";
import type { AccessRight, HybridConnectionSummary, RelayAdmin, RuleKeys } from "./types.ts";

export interface EmulatorAdminOptions {
  /** `sb://127.0.0.1:<port>` (as printed by the emulator); `wss://`/`ws://` also work. */
  endpoint: string;
  /** Whether the emulator serves TLS (decides https vs http for the admin calls). */
  tls?: boolean;
  /** PEM of the CA that signed the emulator's certificate. */
  ca?: string | Buffer;
  /** The namespace's Manage rule (local runs with keys)… */
  manageKeyName?: string;
  manageKey?: string;
  /**
   * …or an Entra ID token of the rollout's identity (Azure Relay Owner on the namespace): the
   * emulator's stand-in for ARM with the app's managed identity, so the simulation holds no key.
   */
  bearerToken?: () => Promise<string>;
  timeoutMs?: number;
}

interface Reply {
  status: number;
  body: unknown;
}

const agentOptions = { keepAlive: true, maxSockets: 32 };

/** Creates the emulator implementation of {@link RelayAdmin}. */
export function createEmulatorRelayAdmin(options: EmulatorAdminOptions): RelayAdmin {
  const ep = parseEndpoint(options.endpoint);
  const useTls = options.tls ?? ep.scheme === "wss";
  const agent = useTls ? new https.Agent({ ...agentOptions, ca: options.ca }) : new http.Agent(agentOptions);
  const base = `${useTls ? "https" : "http"}://${ep.authority}`;
  const audience = audienceFor(options.endpoint);
  let token = "";
  let tokenExpires = 0;

  async function authorization(): Promise<string> {
    if (options.bearerToken) return `Bearer ${await options.bearerToken()}`;
    const now = Math.floor(Date.now() / 1000);
    if (now > tokenExpires - 300) {
      token = createSasToken(audience, options.manageKeyName ?? "", options.manageKey ?? "", {
        ttlSeconds: 3600,
      });
      tokenExpires = now + 3600;
    }
    return token;
  }

  async function request(method: string, path: string, body?: unknown): Promise<Reply> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const auth = await authorization();
    return new Promise((resolve, reject) => {
      const mod = useTls ? https : http;
      const req = mod.request(
        `${base}${path}`,
        {
          method,
          agent,
          timeout: options.timeoutMs ?? 15_000,
          headers: {
            Authorization: auth,
            ...(payload === undefined
              ? {}
              : { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(payload) }),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            let parsed: unknown = text;
            try {
              parsed = text ? JSON.parse(text) : undefined;
            } catch {
              // keep the text for the error message
            }
            resolve({ status: res.statusCode ?? 0, body: parsed });
          });
          res.on("error", reject);
        },
      );
      req.on("timeout", () => req.destroy(new Error(`relay admin ${method} ${path} timed out`)));
      req.on("error", (err) =>
        reject(
          new RelayFleetError(
            "RF_ERR_RELAYADMIN_UNREACHABLE",
            `The relay admin API at ${base} is unreachable: ${err.message}`,
            { cause: err },
          ),
        ),
      );
      req.end(payload);
    });
  }

  function fail(what: string, reply: Reply): never {
    const detail = typeof reply.body === "string" ? reply.body : JSON.stringify(reply.body ?? "");
    throw new RelayFleetError(
      "RF_ERR_RELAYADMIN_FAILED",
      `Relay admin could not ${what}: HTTP ${reply.status} ${detail.slice(0, 200)}`,
    );
  }

  const hcPath = (name: string) => `/$admin/hybridConnections/${encodeURIComponent(name)}`;
  const rulePath = (hc: string, rule: string) =>
    `${hcPath(hc)}/authorizationRules/${encodeURIComponent(rule)}`;

  return {
    endpoint: options.endpoint,
    async ensureHybridConnection(name) {
      const r = await request("PUT", hcPath(name), { requiresClientAuthorization: true });
      if (r.status !== 200 && r.status !== 201) fail(`create hybrid connection ${name}`, r);
    },
    async deleteHybridConnection(name) {
      const r = await request("DELETE", hcPath(name));
      if (r.status === 404) return false;
      if (r.status !== 204 && r.status !== 200) fail(`delete hybrid connection ${name}`, r);
      return true;
    },
    async ensureRule(hc, rule, rights) {
      const r = await request("PUT", rulePath(hc, rule), { rights });
      if (r.status !== 200 && r.status !== 201) fail(`create rule ${rule} on ${hc}`, r);
      return toRule(r.body, rule, `create rule ${rule} on ${hc}`);
    },
    async getRule(hc, rule) {
      const r = await request("GET", rulePath(hc, rule));
      if (r.status === 404) return undefined;
      if (r.status !== 200) fail(`read rule ${rule} on ${hc}`, r);
      return toRule(r.body, rule, `read rule ${rule} on ${hc}`);
    },
    async regenerateKey(hc, rule, which) {
      const keyType = which === "primary" ? "PrimaryKey" : "SecondaryKey";
      const r = await request("POST", `${rulePath(hc, rule)}/regenerateKeys`, { keyType });
      if (r.status !== 200) fail(`regenerate the ${which} key of ${rule} on ${hc}`, r);
      return toRule(r.body, rule, `regenerate a key of ${rule}`);
    },
    async deleteRule(hc, rule) {
      const r = await request("DELETE", rulePath(hc, rule));
      if (r.status !== 204 && r.status !== 200 && r.status !== 404) fail(`delete rule ${rule} on ${hc}`, r);
    },
    async list() {
      const r = await request("GET", "/$admin/hybridConnections");
      if (r.status !== 200 || !Array.isArray(r.body)) fail("list hybrid connections", r);
      const out: HybridConnectionSummary[] = [];
      for (const item of r.body as unknown[]) {
        const o = item as { name?: unknown; listenerCount?: unknown };
        if (typeof o.name !== "string") continue;
        out.push(
          typeof o.listenerCount === "number"
            ? { name: o.name, listenerCount: o.listenerCount }
            : { name: o.name },
        );
      }
      return out;
    },
  };
}

function toRule(body: unknown, fallbackName: string, what: string): RuleKeys {
  const o = (body ?? {}) as {
    name?: unknown;
    rights?: unknown;
    primaryKey?: unknown;
    secondaryKey?: unknown;
  };
  if (typeof o.primaryKey !== "string" || typeof o.secondaryKey !== "string") {
    throw new RelayFleetError(
      "RF_ERR_RELAYADMIN_FAILED",
      `Relay admin could not ${what}: the answer has no keys.`,
    );
  }
  const rights = Array.isArray(o.rights)
    ? (o.rights.filter((r) => typeof r === "string") as AccessRight[])
    : [];
  return {
    name: typeof o.name === "string" ? o.name : fallbackName,
    rights,
    primaryKey: o.primaryKey,
    secondaryKey: o.secondaryKey,
  };
}
