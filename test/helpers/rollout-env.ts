/**
 * The rollout service wired to the real emulators: Azurite (port ledger), the IoT Hub emulator
 * (through azure-iothub) and the relay emulator (through its admin API). Everything binds port 0
 * and is closed when the test ends.
 */
import { createEmulatorRelayAdmin } from "../../cloud/functions/src/relay-admin/index.ts";
import {
  createRegistryHub,
  createRollout,
  type Rollout,
  type RolloutDeps,
  siteProfilesSchema,
} from "../../cloud/functions/src/rollout/index.ts";
import { createIotHubServiceClients } from "../../lib/azure/iothub-service.ts";
import { createLedger } from "../../lib/ledger/index.ts";
import { type Azurite, startAzurite } from "../../sim/azurite.ts";
import {
  type IotHubEmulator,
  type IotHubEmulatorOptions,
  startIotHubEmulator,
} from "../../sim/iothub-emulator/index.ts";
import { type RelayEmulator, startRelayEmulator } from "../../sim/relay-emulator/index.ts";
import type { CleanupContext } from "./index.ts";

export interface RolloutEnv {
  azurite: Azurite;
  hubEmulator: IotHubEmulator;
  relayEmulator: RelayEmulator;
  rollout: Rollout;
  deps: RolloutDeps;
  /** A second rollout instance on the same backends (another function host). */
  makeRollout(overrides?: Partial<RolloutDeps>): Rollout;
}

export const TEST_PROFILES = siteProfilesSchema.parse({
  default: {
    mappings: { ssh: { target: "127.0.0.1:22" }, web: { target: "127.0.0.1:8080", maxConnections: 10 } },
  },
  single: { mappings: { app: { target: "127.0.0.1:9000" } } },
});

/** Starts the three emulators and a rollout on them. */
export async function startRolloutEnv(
  t: CleanupContext,
  options: {
    ranges?: Array<{ from: number; to: number }>;
    overrides?: Partial<RolloutDeps>;
    eventGridWebhook?: string;
    /** More IoT Hub emulator options (a SKU's throttles, say). */
    hub?: IotHubEmulatorOptions;
  } = {},
): Promise<RolloutEnv> {
  const [azurite, hubEmulator, relayEmulator] = await Promise.all([
    startAzurite(),
    startIotHubEmulator({
      ...options.hub,
      ...(options.eventGridWebhook ? { eventGridWebhook: options.eventGridWebhook } : {}),
    }),
    startRelayEmulator(),
  ]);
  t.after(() => Promise.all([azurite.close(), hubEmulator.close(), relayEmulator.close()]));
  const ranges = options.ranges ?? [{ from: 43000, to: 43999 }];
  const makeRollout = (overrides: Partial<RolloutDeps> = {}) => {
    const { registry } = createIotHubServiceClients(hubEmulator.serviceConnectionString, {
      restPort: hubEmulator.httpsPort,
      ca: hubEmulator.caCert,
    });
    const deps: RolloutDeps = {
      hub: createRegistryHub(registry),
      relay: createEmulatorRelayAdmin({
        endpoint: relayEmulator.url,
        manageKeyName: relayEmulator.manageKeyName,
        manageKey: relayEmulator.manageKey,
      }),
      ledger: createLedger(azurite.connectionString, "portledger", { ranges }),
      profiles: TEST_PROFILES,
      rotatePollMs: 100,
      sendKeyGraceMs: 0,
      ...options.overrides,
      ...overrides,
    };
    return createRollout(deps);
  };
  const rollout = makeRollout();
  await rollout.deps.ledger.ensureTable();
  return { azurite, hubEmulator, relayEmulator, rollout, deps: rollout.deps, makeRollout };
}
