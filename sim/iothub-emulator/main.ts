/**
 * `tsx sim/iothub-emulator/main.ts [options]`: runs the IoT Hub emulator and prints one JSON line
 * `{"event":"listening", …}` with its ports, CA file and service connection string.
 * Options fall back to IOTHUB_EMULATOR_* environment variables; SIGINT/SIGTERM close it cleanly.
 * With IOTHUB_EMULATOR_OWNER_KEY set, the caller owns the `iothubowner` key and the line leaves the
 * connection string out (the line lands in log files).
 */
import { readFileSync } from "node:fs";
import { Command } from "commander";
import { z } from "zod";
import { parseTrustFile } from "../../lib/entra/jwt.ts";
import { createLogger } from "../../lib/log.ts";
import { startIotHubEmulator } from "./index.ts";
import { HUB_SKUS, hubSkuSchema } from "./quotas.ts";

const env = process.env;
const program = new Command()
  .name("iothub-emulator")
  .option("--host <addr>", "loopback address to bind", env.IOTHUB_EMULATOR_HOST ?? "127.0.0.1")
  .option("--mqtt-port <n>", "MQTT over TLS port (0 = any)", env.IOTHUB_EMULATOR_MQTT_PORT ?? "0")
  .option("--https-port <n>", "HTTPS REST port (0 = any)", env.IOTHUB_EMULATOR_HTTPS_PORT ?? "0")
  .option(
    "--workload-port <n>",
    "IoT Edge workload API port (0 = any)",
    env.IOTHUB_EMULATOR_WORKLOAD_PORT ?? "0",
  )
  .option("--dir <dir>", "directory for the CA and certificates", env.IOTHUB_EMULATOR_DIR)
  .option("--state-file <file>", "persist the hub state to this JSON file", env.IOTHUB_EMULATOR_STATE_FILE)
  .option("--event-grid-webhook <url>", "POST device events here", env.IOTHUB_EMULATOR_EVENT_GRID_WEBHOOK)
  .option(
    "--query-throttle <n>",
    "query operations per minute (0 = off)",
    env.IOTHUB_EMULATOR_QUERY_THROTTLE ?? "0",
  )
  .option(
    "--sku <sku>",
    `enforce this IoT Hub SKU's operation throttles (${HUB_SKUS.join(", ")}); unset = unthrottled`,
    env.IOTHUB_EMULATOR_SKU,
  )
  .option("--units <n>", "units of --sku", env.IOTHUB_EMULATOR_UNITS ?? "1")
  .option("--trust-file <file>", "accept Entra ID tokens of the issuer in this file (identity emulator)")
  .option(
    "--role <principalId=role>",
    "assign an IoT Hub data role to a principal at the hub (repeatable)",
    (v: string, prev: string[]) => [...prev, v],
    [] as string[],
  )
  .parse();

const { role: roles, ...rest } = program.opts<{ role: string[] } & Record<string, string | undefined>>();
const o: Record<string, string | undefined> = rest;
const port = (v: string | undefined, name: string) => {
  const n = Number(v ?? "0");
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`--${name} must be a port number`);
  return n;
};

const emulator = await startIotHubEmulator({
  host: o.host ?? "127.0.0.1",
  mqttPort: port(o.mqttPort, "mqtt-port"),
  httpsPort: port(o.httpsPort, "https-port"),
  workloadPort: port(o.workloadPort, "workload-port"),
  ...(o.dir ? { dir: o.dir } : {}),
  ...(o.stateFile ? { stateFile: o.stateFile } : {}),
  ...(o.eventGridWebhook ? { eventGridWebhook: o.eventGridWebhook } : {}),
  ...(env.IOTHUB_EMULATOR_OWNER_KEY ? { ownerKey: env.IOTHUB_EMULATOR_OWNER_KEY } : {}),
  queryThrottlePerMinute: Number(o.queryThrottle ?? "0") || 0,
  ...(o.sku ? { sku: hubSkuSchema.parse(o.sku), units: z.coerce.number().int().min(1).parse(o.units) } : {}),
  ...(o.trustFile ? { trustedIssuers: [parseTrustFile(readFileSync(o.trustFile, "utf8"))] } : {}),
  logger: createLogger("iothub-emulator"),
});
roles.forEach((spec, i) => {
  const eq = spec.indexOf("=");
  if (eq < 1) throw new Error(`--role must be <principalId>=<role>, got '${spec}'`);
  emulator.rbac.put(`cli-${i}`, spec.slice(0, eq), spec.slice(eq + 1));
});

process.stdout.write(
  `${JSON.stringify({
    event: "listening",
    hostName: emulator.hostName,
    mqttPort: emulator.mqttPort,
    httpsPort: emulator.httpsPort,
    workloadPort: emulator.workloadPort,
    caFile: emulator.caFile,
    ...(env.IOTHUB_EMULATOR_OWNER_KEY ? {} : { serviceConnectionString: emulator.serviceConnectionString }),
  })}\n`,
);

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  void emulator.close().then(() => process.exit(0));
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
