/** The port ledger (ADR 0003): rows, allocation, Azure Table / Azurite client. */
export * from "./cidr.ts";
export * from "./device-claims.ts";
export * from "./gateway-status.ts";
export * from "./ledger.ts";
export * from "./ordinals.ts";
export * from "./port-ledger.ts";
export * from "./port-ranges.ts";
export * from "./route-limits.ts";
export * from "./schema.ts";
export * from "./storage-error.ts";
export * from "./table.ts";
