/**
 * How the CLI finds what to talk to, in order:
 * 1. `RELAY_FLEET_API_URL` (+ `RELAY_FLEET_API_KEY`, the function key): a deployed Functions app.
 * 2. The local simulation's discovery file: `RELAY_FLEET_SIM_STATE`, else `.sim-state/sim.json`
 *    in the current directory or a parent. The simulation writes it (contract below).
 * 3. Direct access with the rollout service's own variables (`IOTHUB_CONNECTION_STRING`,
 *    `LEDGER_CONNECTION_STRING`, `RELAY_*`, see cloud/functions/src/config.ts): the CLI runs the
 *    rollout logic itself, against Azure.
 *
 * Discovery file contract (`.sim-state/sim.json`, written by `npm start`):
 * ```json
 * { "version": 1,
 *   "rollout": { "url": "http://127.0.0.1:7071", "functionKey": "<key>" },
 *   "pid": 12345 }
 * ```
 * Other top-level fields are allowed and ignored by the CLI.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { z } from "zod";
import { documented, envText, parseEnv } from "../lib/env.ts";
import { RelayFleetError } from "../lib/errors.ts";

/**
 * The variables discovery reads (lib/env.ts's convention). Direct mode then reads the rollout's
 * own, through its schema (cloud/functions/src/settings.ts).
 */
export const cliEnvSchema = z.object({
  RELAY_FLEET_API_URL: documented(
    envText().pipe(z.url({ error: "must be the rollout API's URL (http:// or https://)" }).optional()),
    { description: "URL of a deployed rollout API (the Functions app); wins over the simulation" },
  ),
  RELAY_FLEET_API_KEY: documented(envText(), {
    description: "function key of the rollout API at RELAY_FLEET_API_URL",
  }),
  RELAY_FLEET_SIM_STATE: documented(envText(), {
    description: "the local simulation's discovery file (default: .sim-state/sim.json here or in a parent)",
  }),
  IOTHUB_CONNECTION_STRING: documented(envText(), {
    description: "direct mode, with a ledger connection string: the CLI runs the rollout logic itself",
  }),
  LEDGER_CONNECTION_STRING: documented(envText(), {
    description: "direct mode: the port ledger's storage connection string (or AzureWebJobsStorage)",
  }),
  AzureWebJobsStorage: documented(envText(), {
    description: "direct mode: the ledger's storage when LEDGER_CONNECTION_STRING is unset",
  }),
});

export const SIM_STATE_RELATIVE = join(".sim-state", "sim.json");

export const simStateSchema = z.looseObject({
  version: z.literal(1),
  rollout: z.looseObject({ url: z.string().url(), functionKey: z.string().min(1) }),
  pid: z.number().int().optional(),
});
export type SimState = z.infer<typeof simStateSchema>;

export type Target =
  | { kind: "api"; url: string; functionKey: string; source: string }
  | { kind: "direct"; source: string };

function findUp(start: string, relative: string): string | undefined {
  let dir = resolve(start);
  for (;;) {
    const candidate = join(dir, relative);
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/** Reads and validates a discovery file; one clear sentence when it is unusable. */
export function readSimState(file: string): SimState {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new RelayFleetError(
      "RF_ERR_CLI_DISCOVERY",
      `The simulation file ${file} cannot be read (${(err as Error).message}).`,
    );
  }
  const parsed = simStateSchema.safeParse(raw);
  if (!parsed.success) {
    throw new RelayFleetError(
      "RF_ERR_CLI_DISCOVERY",
      `The simulation file ${file} is not a version 1 discovery file.`,
    );
  }
  return parsed.data;
}

/** Picks the target from the environment and the working directory. */
export function discoverTarget(processEnv: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): Target {
  const env = parseEnv(cliEnvSchema, processEnv, "RF_ERR_CLI_DISCOVERY", "CLI environment: ");
  if (env.RELAY_FLEET_API_URL) {
    return {
      kind: "api",
      url: env.RELAY_FLEET_API_URL,
      functionKey: env.RELAY_FLEET_API_KEY ?? "",
      source: "RELAY_FLEET_API_URL",
    };
  }
  const file = env.RELAY_FLEET_SIM_STATE || findUp(cwd, SIM_STATE_RELATIVE);
  if (file) {
    const state = readSimState(file);
    return { kind: "api", url: state.rollout.url, functionKey: state.rollout.functionKey, source: file };
  }
  if (env.IOTHUB_CONNECTION_STRING && (env.LEDGER_CONNECTION_STRING || env.AzureWebJobsStorage)) {
    return { kind: "direct", source: "environment" };
  }
  throw new RelayFleetError(
    "RF_ERR_CLI_DISCOVERY",
    "Nothing to talk to: start the local simulation (npm start), or set RELAY_FLEET_API_URL, or set IOTHUB_CONNECTION_STRING and LEDGER_CONNECTION_STRING.",
  );
}
