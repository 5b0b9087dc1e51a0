/**
 * What the CLI's command groups share: the client they call (found by cli/discovery.ts), JSON
 * output, option parsers that fail as usage errors, the exit codes and the status row shape.
 */
import { InvalidArgumentError } from "commander";
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
