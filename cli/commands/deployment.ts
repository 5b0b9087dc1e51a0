/** `relay-fleet deployment apply`: the fleet's base and retired IoT Edge deployments in IoT Hub. */
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { iothubServiceClientsFromEnv } from "../../lib/azure/iothub-service.ts";
import { redactSecrets } from "../../lib/log.ts";
import { applyFleetDeployments, buildFleetDeployments } from "../deployment.ts";
import { print } from "./shared.ts";

export function registerDeploymentCommands(program: Command): void {
  const deployment = program
    .command("deployment")
    .description("The fleet's base IoT Edge deployment (edgeAgent, edgeHub, relayListener) in IoT Hub");
  deployment
    .command("apply")
    .description(
      "Create the base at-scale deployment (deployment.template.json) for every onboarded device and the retired one for offboarded devices (IOTHUB_CONNECTION_STRING)",
    )
    .option("--platform <platform>", "module image platform (module.json)", "amd64")
    .option("--dry-run", "print the deployment instead of creating it")
    .option("--keep-old", "leave older base deployments in place")
    .action(async (o: { platform: string; dryRun?: boolean; keepOld?: boolean }) => {
      const root = fileURLToPath(new URL("../..", import.meta.url));
      const built = buildFleetDeployments(root, o.platform);
      // The registry password from .env must not land in a terminal or a CI log.
      if (o.dryRun)
        return print(
          JSON.parse(redactSecrets(JSON.stringify(built)).replace(/("password":)"[^"]*"/g, '$1"[REDACTED]"')),
        );
      const { registry } = iothubServiceClientsFromEnv();
      print(await applyFleetDeployments(registry, built, { keepOld: o.keepOld === true }));
    });
}
