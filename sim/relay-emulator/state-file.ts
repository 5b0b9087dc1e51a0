/**
 * Optional persistence of the emulated namespace (hybrid connections, authorization rules and
 * their keys) in one JSON file, so a restarted emulator comes back with the entities and keys its
 * listeners and senders already hold — the way the real service keeps them across an outage.
 * Live state (listeners, rendezvous, counters) is never saved: it does not survive a restart of
 * the real service either. Written on every admin change, atomically (temp file + rename).
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { RelayFleetError } from "../../lib/errors.ts";
import type { RelayAdmin } from "./handlers/admin.ts";
import { type AuthorizationRule, type Namespace, ROOT_RULE_NAME } from "./namespace.ts";

const ruleSchema = z.object({
  name: z.string(),
  rights: z.array(z.enum(["Listen", "Send", "Manage"])).min(1),
  primaryKey: z.string().min(1),
  secondaryKey: z.string().min(1),
});

const stateSchema = z.object({
  version: z.literal(1),
  rules: z.array(ruleSchema),
  hybridConnections: z.array(
    z.object({
      name: z.string(),
      requiresClientAuthorization: z.boolean(),
      createdAt: z.string().optional(),
      rules: z.array(ruleSchema),
    }),
  ),
  roleAssignments: z
    .array(
      z.object({ id: z.string(), principalId: z.string(), roleDefinitionId: z.string(), scope: z.string() }),
    )
    .optional(),
});

/** The saved form of a namespace. */
export type NamespaceState = z.infer<typeof stateSchema>;

function ruleState(rule: AuthorizationRule): z.infer<typeof ruleSchema> {
  return {
    name: rule.name,
    rights: [...rule.rights],
    primaryKey: rule.primaryKey,
    secondaryKey: rule.secondaryKey,
  };
}

/** Snapshot of the namespace's entities and keys. */
export function namespaceState(ns: Namespace): NamespaceState {
  return {
    version: 1,
    rules: [...ns.rules.values()].map(ruleState),
    hybridConnections: ns.list().map((hc) => ({
      name: hc.name,
      requiresClientAuthorization: hc.requiresClientAuthorization,
      createdAt: hc.createdAt,
      rules: [...hc.rules.values()].map(ruleState),
    })),
    roleAssignments: [...ns.roleAssignments.values()].map(({ id, principalId, roleDefinitionId, scope }) => ({
      id,
      principalId,
      roleDefinitionId,
      scope,
    })),
  };
}

/** Writes the namespace to `file` atomically (a reader never sees half a file). */
export function saveNamespace(ns: Namespace, file: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(namespaceState(ns), null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, file);
}

/**
 * Loads `file` (when it exists) into `ns`: saved entities and keys are put back as they were.
 * `manageKey`, when given explicitly, still wins for the root rule's primary key.
 * Throws `RF_ERR_RELAYEMU_STATE` on a file that is not a valid saved state.
 */
export function loadNamespace(ns: Namespace, file: string, manageKey?: string): boolean {
  if (!existsSync(file)) return false;
  let parsed: NamespaceState;
  try {
    parsed = stateSchema.parse(JSON.parse(readFileSync(file, "utf8")));
  } catch (err) {
    throw new RelayFleetError("RF_ERR_RELAYEMU_STATE", `relay emulator state file ${file} is not valid`, {
      cause: err,
    });
  }
  for (const r of parsed.rules) ns.putRule(undefined, r.name, r.rights, r.primaryKey, r.secondaryKey);
  for (const hc of parsed.hybridConnections) {
    const { hc: entity } = ns.putHybridConnection(hc.name, {
      requiresClientAuthorization: hc.requiresClientAuthorization,
    });
    if (hc.createdAt) entity.createdAt = hc.createdAt;
    for (const r of hc.rules) ns.putRule(hc.name, r.name, r.rights, r.primaryKey, r.secondaryKey);
  }
  for (const a of parsed.roleAssignments ?? []) ns.putRoleAssignment(a.id, a);
  if (manageKey !== undefined) {
    const root = ns.rules.get(ROOT_RULE_NAME);
    if (root) root.primaryKey = manageKey;
  }
  return true;
}

/**
 * Wraps the admin operations so that every change is saved with `save` (entities and keys only
 * change through the admin API, so this is the one place that needs to know).
 */
export function persistingAdmin(admin: RelayAdmin, save: () => void): RelayAdmin {
  const after =
    <A extends unknown[], R>(fn: (...args: A) => R) =>
    (...args: A): R => {
      const result = fn(...args);
      save();
      return result;
    };
  return {
    ...admin,
    putHybridConnection: after(admin.putHybridConnection),
    deleteHybridConnection: after(admin.deleteHybridConnection),
    putAuthorizationRule: after(admin.putAuthorizationRule),
    regenerateKeys: after(admin.regenerateKeys),
    deleteAuthorizationRule: after(admin.deleteAuthorizationRule),
    putRoleAssignment: after(admin.putRoleAssignment),
    deleteRoleAssignment: after(admin.deleteRoleAssignment),
  };
}

/**
 * The CA and server certificate a previous run wrote to `dir` (`ca.pem`, `server.pem`,
 * `server-key.pem`), so clients that trust that CA file keep trusting a restarted emulator.
 */
export function existingCertificates(
  dir: string,
): { caFile: string; caCert: string; cert: string; key: string } | undefined {
  const caFile = join(dir, "ca.pem");
  const certFile = join(dir, "server.pem");
  const keyFile = join(dir, "server-key.pem");
  if (![caFile, certFile, keyFile].every((f) => existsSync(f))) return undefined;
  return {
    caFile,
    caCert: readFileSync(caFile, "utf8"),
    cert: readFileSync(certFile, "utf8"),
    key: readFileSync(keyFile, "utf8"),
  };
}
