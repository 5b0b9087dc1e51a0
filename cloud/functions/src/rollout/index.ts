/** Rollout logic: one place, used by the Functions handlers, the CLI and the simulation. */
export * from "./apply.ts";
export * from "./context.ts";
export * from "./desired-twin.ts";
export * from "./device-events.ts";
export * from "./errors.ts";
export * from "./hub.ts";
export * from "./hub-pacing.ts";
export * from "./move.ts";
export * from "./namespaces.ts";
export * from "./offboard.ts";
export * from "./onboarding-queue.ts";
export * from "./reconcile.ts";
export * from "./rotate.ts";
export * from "./schemas.ts";
export * from "./service.ts";
export * from "./status.ts";
export * from "./validate-desired.ts";
