/**
 * The one interface rollout uses to manage hybrid connections and their SAS rules. Two
 * implementations: Azure Resource Manager (`arm.ts`) and the relay emulator's admin API
 * (`emulator.ts`).
 */

export type AccessRight = "Listen" | "Send" | "Manage";
export type KeySlot = "primary" | "secondary";

/** An authorization rule with its keys (ARM's listKeys). */
export interface RuleKeys {
  name: string;
  rights: AccessRight[];
  primaryKey: string;
  secondaryKey: string;
}

export interface HybridConnectionSummary {
  name: string;
  /** Known for the emulator; ARM reports it as `listenerCount` too. */
  listenerCount?: number;
}

export interface RelayAdmin {
  /** The endpoint clients connect to (`sb://ns.servicebus.windows.net`, `sb://127.0.0.1:port`). */
  readonly endpoint: string;
  /** Creates the hybrid connection (client authorization required) unless it exists. */
  ensureHybridConnection(name: string): Promise<void>;
  /** Deletes it with its rules and listeners; false when it did not exist. */
  deleteHybridConnection(name: string): Promise<boolean>;
  /** Creates or updates a rule with exactly these rights; existing keys are kept. */
  ensureRule(hybridConnection: string, rule: string, rights: AccessRight[]): Promise<RuleKeys>;
  /** The rule and its keys, or undefined when the rule or its hybrid connection is absent. */
  getRule(hybridConnection: string, rule: string): Promise<RuleKeys | undefined>;
  /** Replaces one key with a new random one and returns both keys. */
  regenerateKey(hybridConnection: string, rule: string, which: KeySlot): Promise<RuleKeys>;
  /** Deletes a rule; absent is fine. */
  deleteRule(hybridConnection: string, rule: string): Promise<void>;
  list(): Promise<HybridConnectionSummary[]>;
}
