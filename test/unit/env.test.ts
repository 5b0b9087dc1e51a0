/**
 * lib/env.ts: how every part reads its environment, and every part's schema documenting each
 * variable it reads and refusing a bad value by name.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { z } from "zod";
import { cliEnvSchema, discoverTarget } from "../../cli/discovery.ts";
import {
  functionsAppSettingsSchema,
  loadLocalServerSettings,
  localServerSettingsSchema,
} from "../../cloud/functions/src/settings.ts";
import { gatewayEnvSchema, loadConfig } from "../../cloud/gateway/src/config.ts";
import { iothubServiceClientsFromEnv, iothubServiceEnvSchema } from "../../lib/azure/iothub-service.ts";
import { describeEnv, documented, envInt, envOptionalInt, envText, parseEnv } from "../../lib/env.ts";
import { hasErrorCode } from "../../lib/errors.ts";
import { moduleEnvSchema, readSettings } from "../../modules/relayListener/src/settings.ts";

const schema = z.object({ COUNT: envInt(2, 1, 8), LIMIT: envOptionalInt(0), NAME: envText() });

test("unset or empty takes the default, numbers are checked, text stays text", () => {
  assert.deepEqual(parseEnv(schema, { COUNT: "", NAME: "" }, "RF_ERR_MODULE_SETTING", ""), {
    COUNT: 2,
    NAME: undefined,
  });
  assert.deepEqual(parseEnv(schema, { COUNT: "8", LIMIT: "0", NAME: "x" }, "RF_ERR_MODULE_SETTING", ""), {
    COUNT: 8,
    LIMIT: 0,
    NAME: "x",
  });
});

test("a refusal names every bad variable and shows numbers, never text", () => {
  try {
    parseEnv(
      schema.extend({ SECRET: z.string().regex(/^ok$/, "must be ok") }),
      { COUNT: "9", LIMIT: "-1", SECRET: "AccountKey=abc" },
      "RF_ERR_GATEWAY_CONFIG",
      "gateway configuration: ",
    );
    assert.fail("accepted");
  } catch (err) {
    assert.ok(hasErrorCode(err, "RF_ERR_GATEWAY_CONFIG"));
    const message = (err as Error).message;
    assert.match(
      message,
      /^gateway configuration: COUNT=9 must be an integer 1-8; LIMIT=-1 must be an integer >= 0/,
    );
    assert.match(message, /SECRET must be ok/);
    assert.doesNotMatch(message, /AccountKey/);
  }
});

/** Every part's environment schema: each documents every variable it reads. */
const PART_SCHEMAS: Array<[string, z.ZodObject]> = [
  ["module", moduleEnvSchema],
  ["gateway", gatewayEnvSchema],
  ["Functions app", functionsAppSettingsSchema],
  ["rollout's local server", localServerSettingsSchema],
  ["IoT Hub service clients (CLI)", iothubServiceEnvSchema],
  ["CLI discovery", cliEnvSchema],
];

test("every part's schema describes every variable it reads", () => {
  for (const [part, schema] of PART_SCHEMAS) {
    const described = describeEnv(schema);
    assert.equal(described.length, Object.keys(schema.shape).length, part);
    for (const v of described) assert.ok(v.description.length >= 10, `${part}: ${v.name} is described`);
  }
  // Each part reads LOG_LEVEL (lib/log.ts) and declares it.
  for (const [part, schema] of PART_SCHEMAS.slice(0, 4)) assert.ok("LOG_LEVEL" in schema.shape, part);
});

test("a schema with an undescribed variable is refused, naming it", () => {
  const schema = z.object({
    DOCUMENTED: documented(envText(), { description: "a variable somebody described" }),
    FORGOTTEN: envInt(1),
  });
  assert.throws(() => describeEnv(schema), /FORGOTTEN is not documented/);
  assert.throws(
    () => describeEnv(z.object({ BLANK: documented(envText(), { description: " " }) })),
    /BLANK is not documented/,
  );
});

test("each part refuses a bad value with its code, naming the variable", () => {
  const refusal = (fn: () => unknown, code: string) => {
    try {
      fn();
    } catch (err) {
      assert.ok(hasErrorCode(err, code as never), `${code}: ${String(err)}`);
      return (err as Error).message;
    }
    assert.fail("accepted");
  };
  assert.match(
    refusal(() => readSettings({ RELAY_LISTENER_COUNT: "9", LOG_LEVEL: "loud" }), "RF_ERR_MODULE_SETTING"),
    /RELAY_LISTENER_COUNT=9 must be an integer 1-8; LOG_LEVEL must be one of fatal/,
  );
  assert.match(
    refusal(
      () => loadConfig({ LEDGER_TABLE_URL: "https://a.table.core.windows.net", GATEWAY_HEALTH_PORT: "x" }),
      "RF_ERR_GATEWAY_CONFIG",
    ),
    /^gateway configuration: GATEWAY_HEALTH_PORT=x must be an integer >= 0$/,
  );
  assert.match(
    refusal(
      () => loadLocalServerSettings({ RECONCILE_SCHEDULE: "0 */5 * * * *", ROLLOUT_PORT: "70000" }),
      "RF_ERR_ROLLOUT_CONFIG",
    ),
    /^rollout configuration: ROLLOUT_PORT=70000 must be an integer 0-65535$/,
  );
  assert.match(
    refusal(
      () =>
        iothubServiceClientsFromEnv({
          IOTHUB_CONNECTION_STRING: "HostName=h.azure-devices.net;SharedAccessKeyName=k;SharedAccessKey=a2V5",
          IOTHUB_REST_PORT: "https",
        }),
      "RF_ERR_IOTHUB_CONNECTION_STRING",
    ),
    /^IoT Hub: IOTHUB_REST_PORT=https must be an integer 1-65535$/,
  );
  assert.match(
    refusal(() => discoverTarget({ RELAY_FLEET_API_URL: "rollout.example" }), "RF_ERR_CLI_DISCOVERY"),
    /^CLI environment: RELAY_FLEET_API_URL must be the rollout API's URL/,
  );
  // Read, not just declared: the local server's port and key, the module's device and version.
  const local = loadLocalServerSettings({
    RECONCILE_SCHEDULE: "0 */5 * * * *",
    ROLLOUT_PORT: "7071",
    ROLLOUT_FUNCTION_KEY: "k",
  });
  assert.deepEqual([local.ROLLOUT_PORT, local.ROLLOUT_FUNCTION_KEY], [7071, "k"]);
  const module = readSettings({
    RELAY_ALLOWLIST_FILE: "/dev/null",
    EdgeHubConnectionString: "HostName=h;DeviceId=plant-1;ModuleId=relayListener;SharedAccessKey=a2V5",
    MODULE_VERSION: "1.2.3",
  });
  assert.deepEqual([module.deviceId, module.version, module.metricsPort], ["plant-1", "1.2.3", undefined]);
  assert.equal(readSettings({ RELAY_ALLOWLIST_FILE: "/dev/null", IOTEDGE_DEVICEID: "d" }).deviceId, "d");
});
