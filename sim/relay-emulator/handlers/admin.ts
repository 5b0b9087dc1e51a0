/**
 * The ARM-like admin API on the emulator's own port (README.md, "Admin API"), authorized by a
 * namespace-level rule with Manage. The same operations are available in-process (`emulator.admin`),
 * so tests can choose; both go through {@link RelayAdmin}.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { z } from "zod";
import { errorMessage, hasErrorCode, RelayFleetError } from "../../../lib/errors.ts";
import { authorize } from "../auth.ts";
import type { EmulatorContext } from "../context.ts";
import type { RelayFaults } from "../faults.ts";
import type { AuthorizationRule, HybridConnectionInfo } from "../namespace.ts";
import type { Right } from "../options.ts";
import type { RoleAssignment } from "../role-assignments.ts";

/** What a rule looks like to clients (ARM's listKeys shape, trimmed). */
export interface RuleView {
  name: string;
  rights: Right[];
  primaryKey: string;
  secondaryKey: string;
}

/** In-process admin operations (hybridConnection undefined = namespace-level rule). */
export interface RelayAdmin {
  listHybridConnections(): HybridConnectionInfo[];
  getHybridConnection(name: string): HybridConnectionInfo | undefined;
  putHybridConnection(
    name: string,
    props?: { requiresClientAuthorization?: boolean },
  ): { created: boolean; hybridConnection: HybridConnectionInfo };
  deleteHybridConnection(name: string): boolean;
  putAuthorizationRule(
    hybridConnection: string | undefined,
    rule: string,
    rights: Right[],
    keys?: { primaryKey?: string; secondaryKey?: string },
  ): { created: boolean; rule: RuleView };
  getAuthorizationRule(hybridConnection: string | undefined, rule: string): RuleView | undefined;
  regenerateKeys(
    hybridConnection: string | undefined,
    rule: string,
    keyType: "PrimaryKey" | "SecondaryKey",
    key?: string,
  ): RuleView | undefined;
  deleteAuthorizationRule(hybridConnection: string | undefined, rule: string): boolean;
  /** Azure RBAC: assigns an Azure Relay role to a principal at the namespace or an entity scope. */
  putRoleAssignment(
    id: string,
    assignment: { principalId: string; roleDefinitionId: string; scope?: string },
  ): { created: boolean; assignment: RoleAssignment };
  listRoleAssignments(): RoleAssignment[];
  deleteRoleAssignment(id: string): boolean;
}

function view(rule: AuthorizationRule): RuleView {
  return {
    name: rule.name,
    rights: [...rule.rights],
    primaryKey: rule.primaryKey,
    secondaryKey: rule.secondaryKey,
  };
}

export function createAdmin(ctx: EmulatorContext): RelayAdmin {
  const ns = ctx.namespace;
  const info = (name: string): HybridConnectionInfo | undefined => {
    const hc = ns.get(name);
    return hc
      ? {
          name: hc.name,
          requiresClientAuthorization: hc.requiresClientAuthorization,
          listenerCount: hc.listeners.size,
        }
      : undefined;
  };
  return {
    listHybridConnections: () => ns.list().map((hc) => info(hc.name)!),
    getHybridConnection: info,
    putHybridConnection(name, props = {}) {
      const max = ctx.options.maxHybridConnectionsPerNamespace;
      if (!ns.get(name) && ns.list().length >= max)
        throw new RelayFleetError(
          "RF_ERR_RELAYEMU_QUOTA_EXCEEDED",
          `QuotaExceeded: the namespace already has ${max} hybrid connections`,
        );
      const { created, hc } = ns.putHybridConnection(name, props);
      return { created, hybridConnection: info(hc.name)! };
    },
    deleteHybridConnection: (name) => ns.deleteHybridConnection(name),
    putAuthorizationRule(hc, rule, rights, keys = {}) {
      const r = ns.putRule(hc, rule, rights, keys.primaryKey, keys.secondaryKey);
      return { created: r.created, rule: view(r.rule) };
    },
    getAuthorizationRule(hc, rule) {
      const r = ns.getRule(hc, rule);
      return r ? view(r) : undefined;
    },
    regenerateKeys(hc, rule, keyType, key) {
      const r = ns.regenerateKey(hc, rule, keyType, key);
      return r ? view(r) : undefined;
    },
    deleteAuthorizationRule: (hc, rule) => ns.deleteRule(hc, rule),
    putRoleAssignment: (id, assignment) => ns.putRoleAssignment(id, assignment),
    listRoleAssignments: () => [...ns.roleAssignments.values()].map((a) => ({ ...a })),
    deleteRoleAssignment: (id) => ns.deleteRoleAssignment(id),
  };
}

const hcBody = z.object({ requiresClientAuthorization: z.boolean().optional() }).passthrough();
const ruleBody = z.object({
  rights: z.array(z.enum(["Listen", "Send", "Manage"])).min(1),
  primaryKey: z.string().min(1).max(256).optional(),
  secondaryKey: z.string().min(1).max(256).optional(),
});
const roleAssignmentBody = z.object({
  principalId: z.string().min(1).max(64),
  roleDefinitionId: z.string().min(1).max(300),
  scope: z.string().max(1000).optional(),
});
const regenerateBody = z.object({
  keyType: z.enum(["PrimaryKey", "SecondaryKey"]),
  key: z.string().min(1).max(256).optional(),
});

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function send(res: ServerResponse, status: number, body?: unknown): void {
  if (res.headersSent) return;
  if (body === undefined) {
    res.writeHead(status).end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new HttpError(413, `request body larger than ${limit} bytes`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("error", reject);
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8").trim();
      if (text === "") return resolve({});
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new HttpError(400, "request body is not valid JSON"));
      }
    });
  });
}

function parse<T>(schema: z.ZodType<T>, value: unknown): T {
  const r = schema.safeParse(value);
  if (!r.success)
    throw new HttpError(
      400,
      `invalid request body: ${r.error.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; ")}`,
    );
  return r.data;
}

function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(400, "invalid URL encoding");
  }
}

/**
 * True when a plain HTTP request's path (`/{path}` or `/$hc/{path}`) names a hybrid connection
 * that has listeners: Azure would relay it in HTTP request mode (relay-protocol.md §1.4), which
 * the emulator does not implement, so the sender learns that instead of a misleading 404.
 */
function addressesListenedHybridConnection(ctx: EmulatorContext, path: string): boolean {
  let name: string;
  try {
    name = decodeURIComponent(path.replace(/^\/(?:(?:\$|%24)hc\/)?/i, "")).replace(/\/+$/, "");
  } catch {
    return false;
  }
  if (!name) return false;
  const hit = ctx.namespace.resolve(name);
  return hit !== undefined && hit.hc.listeners.size > 0;
}

/** Serves one admin request; a hybrid connection's path answers 501, any other 404. Never throws. */
export async function handleAdmin(
  ctx: EmulatorContext,
  admin: RelayAdmin,
  faults: RelayFaults,
  stats: () => unknown,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  try {
    const url = new URL(req.url ?? "/", "http://emulator");
    const path = url.pathname;
    if (!/^\/(\$|%24)admin(\/|$)/i.test(path)) {
      if (addressesListenedHybridConnection(ctx, path))
        throw new HttpError(
          501,
          "not supported: this relay emulator does not implement HTTP request mode; connect with a WebSocket",
        );
      throw new HttpError(404, "not found");
    }
    const token = req.headers.authorization ?? (req.headers.servicebusauthorization as string | undefined);
    const auth = authorize(ctx.namespace, undefined, "Manage", token);
    if (!auth.ok) throw new HttpError(auth.status, auth.description);
    const rest = path.replace(/^\/(\$|%24)admin/i, "");
    const method = req.method ?? "GET";
    const body =
      method === "PUT" || method === "POST" ? await readJson(req, ctx.options.maxAdminBodyBytes) : undefined;
    const result = await route(admin, faults, stats, method, rest, body);
    send(res, result.status, result.body);
  } catch (err) {
    const status =
      err instanceof HttpError
        ? err.status
        : hasErrorCode(err, "RF_ERR_RELAYEMU_NOT_FOUND")
          ? 404
          : ((err as { status?: number }).status ?? 400);
    if (status >= 500) ctx.logger.error({ err }, "admin request failed");
    send(res, status, { error: { status, message: errorMessage(err) } });
  }
}

type Result = { status: number; body?: unknown };

async function route(
  admin: RelayAdmin,
  faults: RelayFaults,
  stats: () => unknown,
  method: string,
  rest: string,
  body: unknown,
): Promise<Result> {
  if (rest === "/stats" && method === "GET") return { status: 200, body: stats() };
  if (rest === "/faults" && method === "POST") {
    try {
      return { status: 200, body: await faults.apply(body) };
    } catch (err) {
      if (err instanceof z.ZodError)
        throw new HttpError(400, `invalid fault request: ${err.issues.map((i) => i.message).join("; ")}`);
      throw err;
    }
  }
  if (rest === "/roleAssignments" && method === "GET")
    return { status: 200, body: admin.listRoleAssignments() };
  const assignmentMatch = /^\/roleAssignments\/([^/]+)$/.exec(rest);
  if (assignmentMatch) {
    const id = decode(assignmentMatch[1]!);
    if (method === "PUT") {
      const b = parse(roleAssignmentBody, body);
      const r = admin.putRoleAssignment(id, {
        principalId: b.principalId,
        roleDefinitionId: b.roleDefinitionId,
        ...(b.scope !== undefined ? { scope: b.scope } : {}),
      });
      return { status: r.created ? 201 : 200, body: r.assignment };
    }
    if (method === "DELETE") {
      if (!admin.deleteRoleAssignment(id)) throw new HttpError(404, `role assignment '${id}' not found`);
      return { status: 204 };
    }
    throw new HttpError(405, "method not allowed");
  }
  if (rest === "/hybridConnections" && method === "GET")
    return { status: 200, body: admin.listHybridConnections() };
  // Rules: /authorizationRules/{rule}[/regenerateKeys] at namespace or under an HC (whose name may hold '/').
  const ruleMatch = /^(?:\/hybridConnections\/(.+))?\/authorizationRules\/([^/]+)(\/regenerateKeys)?$/.exec(
    rest,
  );
  if (ruleMatch) {
    const hc = ruleMatch[1] === undefined ? undefined : decode(ruleMatch[1]);
    const rule = decode(ruleMatch[2]!);
    if (hc !== undefined && !admin.getHybridConnection(hc))
      throw new HttpError(404, `hybrid connection '${hc}' not found`);
    if (ruleMatch[3]) {
      if (method !== "POST") throw new HttpError(405, "method not allowed");
      const b = parse(regenerateBody, body);
      const r = admin.regenerateKeys(hc, rule, b.keyType, b.key);
      if (!r) throw new HttpError(404, `authorization rule '${rule}' not found`);
      return { status: 200, body: r };
    }
    if (method === "PUT") {
      const b = parse(ruleBody, body);
      const r = admin.putAuthorizationRule(hc, rule, b.rights, {
        ...(b.primaryKey ? { primaryKey: b.primaryKey } : {}),
        ...(b.secondaryKey ? { secondaryKey: b.secondaryKey } : {}),
      });
      return { status: r.created ? 201 : 200, body: r.rule };
    }
    if (method === "GET") {
      const r = admin.getAuthorizationRule(hc, rule);
      if (!r) throw new HttpError(404, `authorization rule '${rule}' not found`);
      return { status: 200, body: r };
    }
    if (method === "DELETE") {
      if (!admin.deleteAuthorizationRule(hc, rule))
        throw new HttpError(404, `authorization rule '${rule}' not found`);
      return { status: 204 };
    }
    throw new HttpError(405, "method not allowed");
  }
  const hcMatch = /^\/hybridConnections\/(.+)$/.exec(rest);
  if (hcMatch) {
    const name = decode(hcMatch[1]!);
    if (method === "PUT") {
      const b = parse(hcBody, body);
      const r = admin.putHybridConnection(
        name,
        b.requiresClientAuthorization === undefined
          ? {}
          : { requiresClientAuthorization: b.requiresClientAuthorization },
      );
      return { status: r.created ? 201 : 200, body: r.hybridConnection };
    }
    if (method === "GET") {
      const r = admin.getHybridConnection(name);
      if (!r) throw new HttpError(404, `hybrid connection '${name}' not found`);
      return { status: 200, body: r };
    }
    if (method === "DELETE") {
      if (!admin.deleteHybridConnection(name))
        throw new HttpError(404, `hybrid connection '${name}' not found`);
      return { status: 204 };
    }
    throw new HttpError(405, "method not allowed");
  }
  throw new HttpError(404, "not found");
}
