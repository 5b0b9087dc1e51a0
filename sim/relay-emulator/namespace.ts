/**
 * The emulated namespace: hybrid connections, SAS authorization rules at namespace and entity level,
 * and the longest-prefix, case-insensitive name lookup the service does on `/$hc/{path}`.
 * No sockets here; the registered listeners are kept per hybrid connection behind a small interface.
 */
import { randomBytes } from "node:crypto";
import type { TrustedIssuer } from "../../lib/entra/jwt.ts";
import { RelayFleetError } from "../../lib/errors.ts";
import type { HybridConnectionSpec, Right, RuleSpec } from "./options.ts";
import { type RoleAssignment, roleAssignment } from "./role-assignments.ts";

export const ROOT_RULE_NAME = "RootManageSharedAccessKey";

/** The view of a registered listener the namespace needs (closing it when its entity goes away). */
export interface RegisteredListener {
  readonly id: string;
  close(code: number, reason: string): void;
}

export interface AuthorizationRule {
  name: string;
  rights: Right[];
  primaryKey: string;
  secondaryKey: string;
}

export interface HybridConnection {
  /** Name as created (case preserved); lookups are case-insensitive. */
  name: string;
  requiresClientAuthorization: boolean;
  rules: Map<string, AuthorizationRule>;
  listeners: Set<RegisteredListener>;
  createdAt: string;
}

/** What `GET /$admin/hybridConnections` lists. */
export interface HybridConnectionInfo {
  name: string;
  requiresClientAuthorization: boolean;
  listenerCount: number;
}

export const RIGHTS: readonly Right[] = ["Listen", "Send", "Manage"];

// Azure allows letters, digits, '.', '-', '_' and '/' segments (up to 260 characters).
const HC_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]|\/(?!\/))*$/;
const RULE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,255}$/;

/** A new 256-bit key, base64 (44 characters, the shape Azure generates). */
export function generateKey(): string {
  return randomBytes(32).toString("base64");
}

function invalid(message: string): RelayFleetError {
  return new RelayFleetError("RF_ERR_RELAYEMU_INVALID", message);
}

export function validateHybridConnectionName(name: string): void {
  if (
    typeof name !== "string" ||
    name.length === 0 ||
    name.length > 260 ||
    !HC_NAME.test(name) ||
    name.endsWith("/")
  ) {
    throw invalid(`invalid hybrid connection name '${String(name).slice(0, 80)}'`);
  }
}

function validateRule(name: string, rights: readonly unknown[]): Right[] {
  if (typeof name !== "string" || !RULE_NAME.test(name))
    throw invalid(`invalid rule name '${String(name).slice(0, 80)}'`);
  if (!Array.isArray(rights) || rights.length === 0) throw invalid("rights must be a non-empty array");
  const out: Right[] = [];
  for (const r of rights) {
    if (!RIGHTS.includes(r as Right)) throw invalid(`unknown right '${String(r)}'`);
    if (!out.includes(r as Right)) out.push(r as Right);
  }
  // ARM refuses Manage without Listen and Send; keep the emulator as strict.
  if (out.includes("Manage") && !(out.includes("Listen") && out.includes("Send"))) {
    throw invalid("the Manage right requires Listen and Send as well");
  }
  return out;
}

function validKey(key: string | undefined): string {
  if (key === undefined) return generateKey();
  if (typeof key !== "string" || key.length < 1 || key.length > 256)
    throw invalid("a key must be 1-256 characters");
  return key;
}

/** True when a rule grants `right` (Manage implies Listen and Send). */
export function grants(rule: AuthorizationRule, right: Right): boolean {
  return rule.rights.includes(right) || rule.rights.includes("Manage");
}

export class Namespace {
  readonly rules = new Map<string, AuthorizationRule>();
  /** Azure RBAC role assignments on the namespace and its entities (bearer tokens). */
  readonly roleAssignments = new Map<string, RoleAssignment>();
  /** Entra ID issuers whose tokens are accepted (none: bearer tokens are refused). */
  readonly trustedIssuers: TrustedIssuer[];
  private readonly hcs = new Map<string, HybridConnection>();

  constructor(
    manageKey: string | undefined,
    rules: RuleSpec[],
    hybridConnections: HybridConnectionSpec[],
    trustedIssuers: TrustedIssuer[] = [],
  ) {
    this.trustedIssuers = trustedIssuers;
    this.putRule(undefined, ROOT_RULE_NAME, ["Manage", "Listen", "Send"], manageKey);
    for (const r of rules) this.putRule(undefined, r.name, r.rights, r.primaryKey, r.secondaryKey);
    for (const hc of hybridConnections) {
      this.putHybridConnection(hc.name, { requiresClientAuthorization: hc.requiresClientAuthorization });
      for (const r of hc.authorizationRules ?? [])
        this.putRule(hc.name, r.name, r.rights, r.primaryKey, r.secondaryKey);
    }
  }

  /** Exact (case-insensitive) lookup. */
  get(name: string): HybridConnection | undefined {
    return this.hcs.get(name.toLowerCase());
  }

  list(): HybridConnection[] {
    return [...this.hcs.values()];
  }

  /**
   * The hybrid connection a request path addresses: the longest configured name that equals the
   * path or prefixes it at a `/` boundary, case-insensitively; the rest is the suffix (relay-protocol §5.1).
   */
  resolve(path: string): { hc: HybridConnection; suffix: string } | undefined {
    const lower = path.toLowerCase();
    let best: HybridConnection | undefined;
    for (const [key, hc] of this.hcs) {
      if ((lower === key || lower.startsWith(`${key}/`)) && (!best || key.length > best.name.length))
        best = hc;
    }
    return best ? { hc: best, suffix: path.slice(best.name.length) } : undefined;
  }

  /** Creates or updates (idempotent). Returns whether it was created. */
  putHybridConnection(
    name: string,
    props: { requiresClientAuthorization?: boolean | undefined } = {},
  ): { created: boolean; hc: HybridConnection } {
    validateHybridConnectionName(name);
    const existing = this.get(name);
    if (existing) {
      if (props.requiresClientAuthorization !== undefined) {
        existing.requiresClientAuthorization = props.requiresClientAuthorization;
      }
      return { created: false, hc: existing };
    }
    const hc: HybridConnection = {
      name,
      requiresClientAuthorization: props.requiresClientAuthorization ?? true,
      rules: new Map(),
      listeners: new Set(),
      createdAt: new Date().toISOString(),
    };
    this.hcs.set(name.toLowerCase(), hc);
    return { created: true, hc };
  }

  /** Deletes a hybrid connection and closes its listeners with 1001 ("path deleted"). */
  deleteHybridConnection(name: string): boolean {
    const hc = this.get(name);
    if (!hc) return false;
    this.hcs.delete(name.toLowerCase());
    for (const l of [...hc.listeners]) l.close(1001, "The hybrid connection was deleted");
    hc.listeners.clear();
    return true;
  }

  private scope(hcName: string | undefined): Map<string, AuthorizationRule> {
    if (hcName === undefined) return this.rules;
    const hc = this.get(hcName);
    if (!hc)
      throw new RelayFleetError("RF_ERR_RELAYEMU_NOT_FOUND", `hybrid connection '${hcName}' not found`);
    return hc.rules;
  }

  /** Creates or updates a rule; an existing rule keeps its keys unless new ones are given. */
  putRule(
    hcName: string | undefined,
    name: string,
    rights: readonly unknown[],
    primaryKey?: string,
    secondaryKey?: string,
  ): { created: boolean; rule: AuthorizationRule } {
    const scope = this.scope(hcName);
    const validRights = validateRule(name, rights);
    const existing = scope.get(name);
    if (existing) {
      existing.rights = validRights;
      if (primaryKey !== undefined) existing.primaryKey = validKey(primaryKey);
      if (secondaryKey !== undefined) existing.secondaryKey = validKey(secondaryKey);
      return { created: false, rule: existing };
    }
    const rule = {
      name,
      rights: validRights,
      primaryKey: validKey(primaryKey),
      secondaryKey: validKey(secondaryKey),
    };
    scope.set(name, rule);
    return { created: true, rule };
  }

  getRule(hcName: string | undefined, name: string): AuthorizationRule | undefined {
    return this.scope(hcName).get(name);
  }

  deleteRule(hcName: string | undefined, name: string): boolean {
    return this.scope(hcName).delete(name);
  }

  /** ARM's regenerateKeys: a new random key, or the one given. */
  regenerateKey(
    hcName: string | undefined,
    name: string,
    keyType: "PrimaryKey" | "SecondaryKey",
    key?: string,
  ): AuthorizationRule | undefined {
    const rule = this.scope(hcName).get(name);
    if (!rule) return undefined;
    if (keyType === "PrimaryKey") rule.primaryKey = key === undefined ? generateKey() : validKey(key);
    else rule.secondaryKey = key === undefined ? generateKey() : validKey(key);
    return rule;
  }

  /** Creates or replaces a role assignment (ARM's PUT roleAssignments/{name}). */
  putRoleAssignment(
    id: string,
    body: { principalId: string; roleDefinitionId: string; scope?: string | undefined },
  ): { created: boolean; assignment: RoleAssignment } {
    const assignment = roleAssignment(id, body);
    const created = !this.roleAssignments.has(id);
    this.roleAssignments.set(id, assignment);
    return { created, assignment };
  }

  deleteRoleAssignment(id: string): boolean {
    return this.roleAssignments.delete(id);
  }
}
