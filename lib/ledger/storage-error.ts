/**
 * Storage failures of the ledger as one clear error: whatever the Table SDK throws when storage
 * cannot be reached or fails becomes `RF_ERR_LEDGER_STORAGE_UNAVAILABLE` (503) naming the table.
 */
import { RelayFleetError } from "../errors.ts";
import type { PortLedger } from "./port-ledger.ts";
import { statusOf } from "./table.ts";

/**
 * Storage that cannot be reached or fails (no HTTP status, or 5xx) becomes one clear 503 that names
 * storage; the ledger's own errors (409 port taken, …) and other 4xx answers pass unchanged.
 */
export function storageError(err: unknown, table: string): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === "string" && code.startsWith("RF_ERR_")) return err;
  const status = statusOf(err);
  if (status !== undefined && status < 500) return err;
  const reason = err instanceof Error ? err.message : String(err);
  return new RelayFleetError(
    "RF_ERR_LEDGER_STORAGE_UNAVAILABLE",
    `The port ledger's storage (table ${table}) is unavailable: ${reason || (typeof code === "string" ? code : "no answer")}`,
    { cause: err },
  );
}

/** Wraps every method of `ledger` so storage failures surface as `storageError`. */
export function withStorageErrors(ledger: PortLedger): PortLedger {
  const wrapped = { ...ledger };
  const methods = Object.keys(ledger).filter(
    (k) => typeof (ledger as unknown as Record<string, unknown>)[k] === "function",
  );
  for (const name of methods) {
    const fn = (ledger as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>)[name];
    if (!fn) continue;
    (wrapped as unknown as Record<string, unknown>)[name] = async (...args: unknown[]) => {
      try {
        return await fn(...args);
      } catch (err) {
        throw storageError(err, ledger.table);
      }
    };
  }
  return wrapped;
}
