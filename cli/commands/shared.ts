/**
 * What the CLI's command groups share: the client they call (found by cli/discovery.ts), JSON
 * output, option parsers that fail as usage errors, the exit codes and the status row shape.
 */
import { InvalidArgumentError } from "commander";
import type { z } from "zod";
import { LogicalPortNameSchema, MappingNameSchema } from "../../lib/twin/index.ts";
import { createFleetClient, type FleetClient } from "../client.ts";
import { discoverTarget } from "../discovery.ts";

/** Exit codes: usage errors are the command line's fault, runtime errors are not. */
export const EXIT_RUNTIME = 1;
export const EXIT_USAGE = 2;

/** Runs `fn` with a client of the fleet this machine points at, closed afterwards. */
export async function withClient<T>(fn: (c: FleetClient) => Promise<T>): Promise<T> {
  const client = await createFleetClient(discoverTarget());
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

/** Prints a value as indented JSON on stdout. */
export const print = (value: unknown) => console.log(JSON.stringify(value, null, 2));

/** A command-line value checked by `schema`: its first refusal is the usage error. */
function checkedBy(schema: z.ZodType<string>): (value: string) => string {
  return (value) => {
    const parsed = schema.safeParse(value);
    if (parsed.success) return parsed.data;
    throw new InvalidArgumentError(parsed.error.issues[0]?.message ?? "not accepted");
  };
}

/**
 * A mapping name argument, checked with the one mapping-name rule (lib/twin) on the command line:
 * a bad name is a usage error before any request (the rollout API checks it again).
 */
export const mappingName = checkedBy(MappingNameSchema);

/** An azbridge logical port name (`--port-name`), checked with lib/twin's rule likewise. */
export const logicalPortName = checkedBy(LogicalPortNameSchema);

/** A non-negative integer option. */
export function int(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError("must be a non-negative integer");
  return n;
}

/** A device's row of `relay-fleet status` (and of `devices list`), as the rollout API answers. */
export interface StatusRow {
  siteId: string;
  deviceId: string;
  appliedVersion?: number;
  listenerOnline: boolean;
  listenerStatus: string;
  mappings: number;
  activeConnections: number;
  lastError?: string;
  /** The module on the device per its edge agent (runtime status), and the image it runs. */
  deployment?: string;
  image?: string;
  drift: string[];
}
