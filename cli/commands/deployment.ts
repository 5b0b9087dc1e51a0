/** `relay-fleet deployment apply`: the fleet's base and retired IoT Edge deployments in IoT Hub. */
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { iothubServiceClientsFromEnv } from "../../lib/azure/iothub-service.ts";
import { HUB_SKUS } from "../../lib/hub-fleet-size.ts";
import { redactSecrets } from "../../lib/log.ts";
import { loadEnv } from "../../scripts/genconfig.ts";
import {
  applyFleetDeployments,
  buildFleetDeployments,
  buildSizedFleetDeployments,
  fleetSizing,
} from "../deployment.ts";
import { print } from "./shared.ts";

interface ApplyOptions {
  platform: string;
  dryRun?: boolean;
  keepOld?: boolean;
  fleetSize?: string;
  hubSku?: string;
  hubUnits?: string;
}

export function registerDeploymentCommands(program: Command): void {
  const deployment = program
    .command("deployment")
    .description("The fleet's base IoT Edge deployment (edgeAgent, edgeHub, relayListener) in IoT Hub");
  deployment
    .command("apply")
    .description(
      "Create the base at-scale deployment (deployment.template.json) for every onboarded device and the retired one for offboarded devices (IOTHUB_CONNECTION_STRING); HUB_FLEET_SIZE is sized from the devices it targets (a quarter above, rounded up to 500) and HUB_CONNECTS_PER_SECOND from the hub's SKU (ADR 0027)",
    )
    .option("--platform <platform>", "module image platform (module.json)", "amd64")
    .option("--dry-run", "print the deployment instead of creating it (no device count: the configured size)")
    .option("--keep-old", "leave older base deployments in place")
    .option(
      "--fleet-size <n>",
      "the least HUB_FLEET_SIZE the modules are told (default: .env's HUB_FLEET_SIZE)",
    )
    .option(`--hub-sku <sku>`, `the hub's SKU (${HUB_SKUS.join(", ")}; default .env's IOTHUB_SKU)`)
    .option("--hub-units <n>", "the hub's units (default .env's IOTHUB_UNITS, else 1)")
    .action(async (o: ApplyOptions) => {
      const root = fileURLToPath(new URL("../..", import.meta.url));
      const sizingOptions = {
        ...(o.fleetSize !== undefined ? { fleetSize: Number(o.fleetSize) } : {}),
        ...(o.hubSku !== undefined ? { hubSku: o.hubSku } : {}),
        ...(o.hubUnits !== undefined ? { hubUnits: Number(o.hubUnits) } : {}),
      };
      // The registry password from .env must not land in a terminal or a CI log.
      if (o.dryRun) {
        const built = buildFleetDeployments(
          root,
          o.platform,
          process.env,
          fleetSizing(loadEnv(root), sizingOptions),
        );
        return print(
          JSON.parse(redactSecrets(JSON.stringify(built)).replace(/("password":)"[^"]*"/g, '$1"[REDACTED]"')),
        );
      }
      const { registry } = iothubServiceClientsFromEnv();
      const { deployments, devices, sizing } = await buildSizedFleetDeployments(
        registry,
        root,
        o.platform,
        process.env,
        sizingOptions,
      );
      const result = await applyFleetDeployments(registry, deployments, { keepOld: o.keepOld === true });
      print({ ...result, fleet: { devices, ...sizing } });
    });
}
