/**
 * The rollout service as a local process, for the simulation: the same handlers the Functions host
 * loads, served over node:http by `http-server.ts`, configured from the environment
 * (`config.ts`). `ROLLOUT_PORT` (default 0 = any free port) and `ROLLOUT_FUNCTION_KEY` (default
 * random) choose where and with which key (`localServerSettingsSchema` in settings.ts). Prints one JSON line `{"event":"listening",...}`.
 * It validates the settings the Functions app would (`RECONCILE_SCHEDULE` included, though no timer
 * runs here), so a configuration that would not start in Azure does not start here either.
 */
import { errorMessage } from "../../../lib/errors.ts";
import { createLogger, redactSecrets } from "../../../lib/log.ts";
import { rolloutFromEnv } from "./config.ts";
import { startRolloutHttpServer } from "./http-server.ts";
import { loadLocalServerSettings } from "./settings.ts";

const logger = createLogger("rollout-local");

try {
  const settings = loadLocalServerSettings();
  const rollout = await rolloutFromEnv();
  const server = await startRolloutHttpServer(rollout, {
    port: settings.ROLLOUT_PORT ?? 0,
    ...(settings.ROLLOUT_FUNCTION_KEY ? { functionKey: settings.ROLLOUT_FUNCTION_KEY } : {}),
    logger,
  });
  process.stdout.write(
    // The Event Grid URL carries the function key in `code=`: the line lands in log files.
    `${JSON.stringify({ event: "listening", url: server.url, eventGridUrl: redactSecrets(server.eventGridUrl) })}\n`,
  );
  const stop = () => void server.close().finally(() => process.exit(0));
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
} catch (err) {
  logger.fatal({ err: errorMessage(err) }, "rollout service failed to start");
  process.exit(1);
}
