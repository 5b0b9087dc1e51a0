/**
 * {@link RelayAdmin} over Azure Resource Manager (`@azure/arm-relay`). Untestable without Azure
 * here; its mapping is unit-tested against a fake of the ARM client's `hybridConnections` group.
 */
import type { RelayAPI } from "@azure/arm-relay";
import { RelayFleetError } from "../../../../lib/errors.ts";
import type { AccessRight, HybridConnectionSummary, RelayAdmin, RuleKeys } from "./types.ts";

/** The slice of `RelayAPI` this module calls (so tests can fake exactly that). */
export type ArmHybridConnections = Pick<
  RelayAPI["hybridConnections"],
  | "createOrUpdate"
  | "delete"
  | "createOrUpdateAuthorizationRule"
  | "getAuthorizationRule"
  | "listKeys"
  | "regenerateKeys"
  | "deleteAuthorizationRule"
  | "listByNamespace"
>;

export interface ArmAdminOptions {
  resourceGroup: string;
  namespace: string;
  /** `client.hybridConnections` of a `RelayAPI`. */
  hybridConnections: ArmHybridConnections;
  /** Defaults to `sb://<namespace>.servicebus.windows.net`. */
  endpoint?: string;
}

function statusOf(err: unknown): number | undefined {
  const s = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof s === "number" ? s : undefined;
}

function wrap(what: string, err: unknown): RelayFleetError {
  const message = err instanceof Error ? err.message : String(err);
  return new RelayFleetError("RF_ERR_RELAYADMIN_FAILED", `Azure Relay could not ${what}: ${message}`, {
    cause: err,
  });
}

/** Creates the ARM implementation from an existing `RelayAPI` client group. */
export function createArmRelayAdmin(options: ArmAdminOptions): RelayAdmin {
  const { resourceGroup: rg, namespace: ns, hybridConnections: hcs } = options;

  async function keys(hc: string, rule: string, rights: AccessRight[]): Promise<RuleKeys> {
    const k = await hcs.listKeys(rg, ns, hc, rule);
    if (!k.primaryKey || !k.secondaryKey) throw wrap(`read the keys of ${rule} on ${hc}`, "no keys returned");
    return { name: rule, rights, primaryKey: k.primaryKey, secondaryKey: k.secondaryKey };
  }

  return {
    endpoint: options.endpoint ?? `sb://${ns}.servicebus.windows.net`,
    async ensureHybridConnection(name) {
      try {
        await hcs.createOrUpdate(rg, ns, name, { requiresClientAuthorization: true });
      } catch (err) {
        throw wrap(`create hybrid connection ${name}`, err);
      }
    },
    async deleteHybridConnection(name) {
      try {
        await hcs.delete(rg, ns, name);
        return true;
      } catch (err) {
        if (statusOf(err) === 404) return false;
        throw wrap(`delete hybrid connection ${name}`, err);
      }
    },
    async ensureRule(hc, rule, rights) {
      try {
        await hcs.createOrUpdateAuthorizationRule(rg, ns, hc, rule, { rights });
        return await keys(hc, rule, rights);
      } catch (err) {
        if (err instanceof RelayFleetError) throw err;
        throw wrap(`create rule ${rule} on ${hc}`, err);
      }
    },
    async getRule(hc, rule) {
      try {
        const r = await hcs.getAuthorizationRule(rg, ns, hc, rule);
        return await keys(hc, rule, (r.rights ?? []) as AccessRight[]);
      } catch (err) {
        if (statusOf(err) === 404) return undefined;
        if (err instanceof RelayFleetError) throw err;
        throw wrap(`read rule ${rule} on ${hc}`, err);
      }
    },
    async regenerateKey(hc, rule, which) {
      try {
        const keyType = which === "primary" ? "PrimaryKey" : "SecondaryKey";
        const k = await hcs.regenerateKeys(rg, ns, hc, rule, { keyType });
        const r = await hcs.getAuthorizationRule(rg, ns, hc, rule);
        if (!k.primaryKey || !k.secondaryKey) return await keys(hc, rule, (r.rights ?? []) as AccessRight[]);
        return {
          name: rule,
          rights: (r.rights ?? []) as AccessRight[],
          primaryKey: k.primaryKey,
          secondaryKey: k.secondaryKey,
        };
      } catch (err) {
        if (err instanceof RelayFleetError) throw err;
        throw wrap(`regenerate the ${which} key of ${rule} on ${hc}`, err);
      }
    },
    async deleteRule(hc, rule) {
      try {
        await hcs.deleteAuthorizationRule(rg, ns, hc, rule);
      } catch (err) {
        if (statusOf(err) !== 404) throw wrap(`delete rule ${rule} on ${hc}`, err);
      }
    },
    async list() {
      const out: HybridConnectionSummary[] = [];
      try {
        for await (const hc of hcs.listByNamespace(rg, ns)) {
          if (!hc.name) continue;
          out.push(
            hc.listenerCount === undefined
              ? { name: hc.name }
              : { name: hc.name, listenerCount: hc.listenerCount },
          );
        }
      } catch (err) {
        throw wrap("list hybrid connections", err);
      }
      return out;
    },
  };
}
