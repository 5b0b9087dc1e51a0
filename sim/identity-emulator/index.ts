/**
 * A local Microsoft Entra ID token issuer for the simulation: it serves the managed-identity
 * endpoint of App Service / Functions (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`, api-version
 * 2019-08-01) that the unmodified `@azure/identity` `ManagedIdentityCredential` calls, and signs
 * RS256 access tokens with a key generated at start. The emulators trust that key through the
 * trust file (`issuer` + public keys by `kid`).
 *
 * Each identity stands for one Azure resource's system-assigned identity: it has its own secret
 * `IDENTITY_HEADER` (as each App Service app has), principal (object) id and client id, so the
 * gateway and the rollout are told apart by role assignments exactly as in Azure.
 *
 *   GET /msi/token?api-version=2019-08-01&resource=https://relay.azure.net   X-IDENTITY-HEADER: <secret>
 *   → 200 {"access_token":"…","expires_on":"<unix s>","resource":"…","token_type":"Bearer","client_id":"…"}
 *
 * Admin (for tests and the simulation; `Authorization: Bearer <adminToken>`):
 *   POST /admin/identities {"name"}            → the identity (created once per name)
 *   POST /admin/faults {"identity","fail":bool,"status"?} → token requests of that identity fail
 *   POST /admin/settings {"tokenLifetimeSeconds"}         → lifetime of tokens issued from now on
 *   GET  /admin/stats                                      → tokens issued / refused per identity
 */
import { generateKeyPairSync, randomBytes, randomUUID, timingSafeEqual } from "node:crypto";
import { writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { z } from "zod";
import { signJwt, type TrustedIssuer } from "../../lib/entra/jwt.ts";
import { errorMessage, RelayFleetError } from "../../lib/errors.ts";
import { readLimitedBody } from "../../lib/http-body.ts";
import { createLogger, type Logger } from "../../lib/log.ts";

export const IDENTITY_API_VERSION = "2019-08-01";
export const IDENTITY_HEADER_NAME = "x-identity-header";

export interface EmulatedIdentity {
  name: string;
  /** Object id of the service principal: what role assignments name. */
  principalId: string;
  clientId: string;
  /** The secret the process presents (`IDENTITY_HEADER`). */
  identityHeader: string;
}

export interface IdentityEmulatorOptions {
  host?: string;
  port?: number;
  /** Lifetime of issued tokens (Azure's managed-identity tokens last up to 24 h). */
  tokenLifetimeSeconds?: number;
  tenantId?: string;
  /** Identities that exist from the start. */
  identities?: string[];
  /** Also write the trust file here (what the relay and IoT Hub emulators load). */
  trustFile?: string;
  logger?: Logger;
}

export interface IdentityEmulatorStats {
  issued: Record<string, number>;
  refused: number;
}

export interface IdentityEmulator {
  /** The `IDENTITY_ENDPOINT` value. */
  readonly endpoint: string;
  readonly url: string;
  readonly port: number;
  readonly tenantId: string;
  /** `iss` of the tokens (the Entra v1 form `https://sts.windows.net/{tenant}/`). */
  readonly issuer: string;
  /** What a resource needs to trust these tokens. */
  readonly trust: TrustedIssuer;
  readonly adminToken: string;
  /** Creates the identity (idempotent by name). */
  addIdentity(name: string): EmulatedIdentity;
  identity(name: string): EmulatedIdentity | undefined;
  /** The environment a process runs with to be this identity. */
  envFor(name: string): { IDENTITY_ENDPOINT: string; IDENTITY_HEADER: string };
  /** Makes token requests of `name` fail with `status` (default 403) until called with false. */
  failTokens(name: string, fail: boolean, status?: number): void;
  setTokenLifetime(seconds: number): void;
  /** Signs a token as this issuer would, with any claims overridden (tests: expired, other audience). */
  issueToken(name: string, resource: string, overrides?: Record<string, unknown>): string;
  stats(): IdentityEmulatorStats;
  close(): Promise<void>;
}

const identityBody = z.object({ name: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/) });
const faultBody = z.object({
  identity: z.string().min(1),
  fail: z.boolean(),
  status: z.number().int().min(400).max(599).optional(),
});
const settingsBody = z.object({ tokenLifetimeSeconds: z.number().int().min(1).max(86_400) });

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

/** Admin bodies are a few fields; a larger one is refused. */
const MAX_ADMIN_BODY = 16 * 1024;
/** What is read and dropped past the limit so the client gets its 413; beyond it the socket goes. */
const MAX_DISCARD = 1024 * 1024;

function tooLarge(): RelayFleetError {
  return new RelayFleetError(
    "RF_ERR_IDENTITYEMU_TOO_LARGE",
    `request body larger than ${MAX_ADMIN_BODY} bytes`,
  );
}

/** Reads an admin body as JSON (empty: `{}`); too large or not JSON: a typed refusal. */
async function readBody(req: IncomingMessage): Promise<unknown> {
  const text = (
    await readLimitedBody(req, { maxBytes: MAX_ADMIN_BODY, maxDiscardBytes: MAX_DISCARD, tooLarge })
  ).trim();
  try {
    return text === "" ? {} : JSON.parse(text);
  } catch {
    throw new RelayFleetError("RF_ERR_IDENTITYEMU_INVALID", "request body is not JSON");
  }
}

/** A body checked by `schema`, or `RF_ERR_IDENTITYEMU_INVALID` naming each bad field. */
function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  throw new RelayFleetError(
    "RF_ERR_IDENTITYEMU_INVALID",
    `invalid request body: ${parsed.error.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; ")}`,
  );
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Starts the issuer (port 0 by default) and resolves once it listens. */
export async function startIdentityEmulator(
  options: IdentityEmulatorOptions = {},
): Promise<IdentityEmulator> {
  const logger =
    options.logger ?? createLogger("identity-emulator", { level: process.env.LOG_LEVEL ?? "silent" });
  const tenantId = options.tenantId ?? randomUUID();
  const issuer = `https://sts.windows.net/${tenantId}/`;
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const kid = randomBytes(16).toString("base64url");
  const publicPem = publicKey.export({ type: "spki", format: "pem" }).toString();
  const trust: TrustedIssuer = { issuer, keys: { [kid]: publicPem } };
  const adminToken = randomBytes(24).toString("base64url");
  let lifetime = options.tokenLifetimeSeconds ?? 3600;
  const byName = new Map<string, EmulatedIdentity>();
  const faults = new Map<string, number>();
  const stats: IdentityEmulatorStats = { issued: {}, refused: 0 };

  const addIdentity = (name: string): EmulatedIdentity => {
    parseBody(identityBody, { name });
    let id = byName.get(name);
    if (!id) {
      id = {
        name,
        principalId: randomUUID(),
        clientId: randomUUID(),
        identityHeader: randomBytes(24).toString("base64url"),
      };
      byName.set(name, id);
    }
    return id;
  };
  for (const name of options.identities ?? []) addIdentity(name);

  const issueToken = (name: string, resource: string, overrides: Record<string, unknown> = {}): string => {
    const id = byName.get(name);
    if (!id) throw new RelayFleetError("RF_ERR_IDENTITYEMU_NOT_FOUND", `no identity named ${name}`);
    const now = Math.floor(Date.now() / 1000);
    // The claims of an Entra v1 app-only token for a managed identity (those services read).
    const claims = {
      aud: resource,
      iss: issuer,
      iat: now,
      nbf: now,
      exp: now + lifetime,
      appid: id.clientId,
      appidacr: "2",
      idp: issuer,
      idtyp: "app",
      oid: id.principalId,
      sub: id.principalId,
      tid: tenantId,
      uti: randomBytes(12).toString("base64url"),
      ver: "1.0",
      xms_mirid: `/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/relay-fleet-sim/providers/Microsoft.Web/sites/${id.name}`,
      ...overrides,
    };
    return signJwt(claims, privateKey, kid);
  };

  const findByHeader = (header: string): EmulatedIdentity | undefined => {
    for (const id of byName.values()) if (sameSecret(id.identityHeader, header)) return id;
    return undefined;
  };

  const refuse = (res: ServerResponse, status: number, error: string, description: string) => {
    stats.refused++;
    send(res, status, { error, error_description: description, message: description });
  };

  const handleToken = (req: IncomingMessage, res: ServerResponse, url: URL) => {
    const header = req.headers[IDENTITY_HEADER_NAME];
    if (typeof header !== "string" || header === "")
      return refuse(res, 400, "invalid_request", "The X-IDENTITY-HEADER header is required.");
    const id = findByHeader(header);
    if (!id) return refuse(res, 401, "unauthorized_client", "The X-IDENTITY-HEADER value is not valid.");
    if (url.searchParams.get("api-version") !== IDENTITY_API_VERSION)
      return refuse(res, 400, "invalid_request", `api-version must be ${IDENTITY_API_VERSION}.`);
    const resource = url.searchParams.get("resource");
    if (!resource) return refuse(res, 400, "invalid_request", "The resource parameter is required.");
    // A user-assigned identity is asked for by client_id / principal_id / mi_res_id; the emulated
    // app only has its system-assigned identity, so another id is refused as App Service does.
    const asked =
      url.searchParams.get("client_id") ??
      url.searchParams.get("principal_id") ??
      url.searchParams.get("object_id");
    if (asked && asked !== id.clientId && asked !== id.principalId)
      return refuse(
        res,
        400,
        "invalid_request",
        "No user-assigned identity with that id is assigned to this app.",
      );
    const faultStatus = faults.get(id.name);
    if (faultStatus !== undefined)
      return refuse(
        res,
        faultStatus,
        "service_unavailable",
        "The identity endpoint refused the request (injected fault).",
      );
    const token = issueToken(id.name, resource);
    stats.issued[id.name] = (stats.issued[id.name] ?? 0) + 1;
    logger.debug({ identity: id.name, resource }, "token issued");
    send(res, 200, {
      access_token: token,
      expires_on: String(Math.floor(Date.now() / 1000) + lifetime),
      resource,
      token_type: "Bearer",
      client_id: id.clientId,
    });
  };

  const handleAdmin = async (req: IncomingMessage, res: ServerResponse, path: string) => {
    const auth = req.headers.authorization ?? "";
    if (!sameSecret(auth, `Bearer ${adminToken}`)) return send(res, 401, { error: "admin token required" });
    try {
      if (req.method === "POST" && path === "/admin/identities") {
        const b = parseBody(identityBody, await readBody(req));
        return send(res, 200, addIdentity(b.name));
      }
      if (req.method === "POST" && path === "/admin/faults") {
        const b = parseBody(faultBody, await readBody(req));
        if (!byName.has(b.identity))
          throw new RelayFleetError("RF_ERR_IDENTITYEMU_NOT_FOUND", `no identity named ${b.identity}`);
        api.failTokens(b.identity, b.fail, b.status);
        return send(res, 200, { identity: b.identity, fail: b.fail });
      }
      if (req.method === "POST" && path === "/admin/settings") {
        const b = parseBody(settingsBody, await readBody(req));
        lifetime = b.tokenLifetimeSeconds;
        return send(res, 200, { tokenLifetimeSeconds: lifetime });
      }
      if (req.method === "GET" && path === "/admin/stats") return send(res, 200, stats);
      return send(res, 404, { error: "not found" });
    } catch (err) {
      // Typed refusals answer with their status and code; anything else is the emulator's fault.
      if (err instanceof RelayFleetError && err.status !== undefined)
        return send(res, err.status, { error: err.message, code: err.code });
      logger.error({ err: errorMessage(err) }, "admin request failed");
      return send(res, 500, { error: "internal error" });
    }
  };

  const server = createServer((req, res) => {
    let url: URL;
    try {
      url = new URL(req.url ?? "/", "http://identity");
    } catch {
      return send(res, 400, { error: "invalid request target" });
    }
    if (url.pathname === "/msi/token" && req.method === "GET") return handleToken(req, res, url);
    if (url.pathname.startsWith("/admin/")) return void handleAdmin(req, res, url.pathname);
    return send(res, 404, { error: "not found" });
  });
  server.on("clientError", (_err, socket) => socket.destroy());
  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
  if (options.trustFile) writeFileSync(options.trustFile, `${JSON.stringify(trust, null, 2)}\n`);

  const api: IdentityEmulator = {
    endpoint: `${url}/msi/token`,
    url,
    port,
    tenantId,
    issuer,
    trust,
    adminToken,
    addIdentity,
    identity: (name) => byName.get(name),
    envFor(name) {
      const id = addIdentity(name);
      return { IDENTITY_ENDPOINT: `${url}/msi/token`, IDENTITY_HEADER: id.identityHeader };
    },
    failTokens(name, fail, status = 403) {
      if (fail) faults.set(name, status);
      else faults.delete(name);
    },
    setTokenLifetime(seconds) {
      parseBody(settingsBody, { tokenLifetimeSeconds: seconds });
      lifetime = seconds;
    },
    issueToken,
    stats: () => structuredClone(stats),
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
  logger.info({ url }, "identity emulator listening");
  return api;
}
