/**
 * The Functions app's environment schema (`cloud/functions/src/settings.ts`): every variable is
 * documented, bad values are refused naming the variable, `RECONCILE_SCHEDULE` is required, and
 * the shipped `local.settings.json.example` is a configuration the schema accepts.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import {
  describeSettings,
  functionsAppSettingsSchema,
  loadFunctionsAppSettings,
  loadRolloutSettings,
} from "../../cloud/functions/src/settings.ts";
import { hasErrorCode } from "../../lib/errors.ts";
import { REPO_ROOT } from "../helpers/index.ts";

const SCHEDULE = { RECONCILE_SCHEDULE: "0 */5 * * * *" };

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(hasErrorCode(err, "RF_ERR_ROLLOUT_CONFIG"), String(err));
    return (err as Error).message;
  }
  assert.fail("the configuration was accepted");
}

test("every variable is documented with where it is set", () => {
  const settings = describeSettings();
  assert.equal(settings.length, Object.keys(functionsAppSettingsSchema.shape).length);
  for (const s of settings) {
    assert.ok(s.description.length > 10, `${s.name} has a description`);
    assert.ok(["app-setting", "secret", "local"].includes(s.deploy), `${s.name}: ${s.deploy}`);
  }
  assert.equal(settings.find((s) => s.name === "RECONCILE_SCHEDULE")?.deploy, "app-setting");
});

test("RECONCILE_SCHEDULE is required by the Functions app, not by the CLI's direct mode", () => {
  assert.match(
    refusal(() => loadFunctionsAppSettings({})),
    /RECONCILE_SCHEDULE is required/,
  );
  assert.match(
    refusal(() => loadFunctionsAppSettings({ RECONCILE_SCHEDULE: "*/5 * * * *" })),
    /RECONCILE_SCHEDULE must be an NCRONTAB expression with six fields/,
  );
  assert.equal(loadFunctionsAppSettings(SCHEDULE).RECONCILE_SCHEDULE, "0 */5 * * * *");
  assert.doesNotThrow(() => loadRolloutSettings({}));
});

test("bad values are refused, naming each variable", () => {
  const message = refusal(() =>
    loadFunctionsAppSettings({
      ...SCHEDULE,
      ROTATE_TIMEOUT_MS: "soon",
      ROTATE_SEND_GRACE_MS: "-1",
      IOTHUB_REST_PORT: "70000",
      RELAY_PORT_RANGES: "50000-40000",
      RELAY_TLS: "yes",
    }),
  );
  for (const name of [
    "ROTATE_TIMEOUT_MS",
    "ROTATE_SEND_GRACE_MS",
    "IOTHUB_REST_PORT",
    "RELAY_PORT_RANGES",
    "RELAY_TLS",
  ])
    assert.match(message, new RegExp(`\\b${name}\\b`), name);
});

test("defaults and parsed values", () => {
  const s = loadFunctionsAppSettings({
    ...SCHEDULE,
    RELAY_PORT_RANGES: "41000-41009, 42000",
    ROTATE_TIMEOUT_MS: "1500",
    LEDGER_TABLE: "",
  });
  assert.deepEqual(s.RELAY_PORT_RANGES, [
    { from: 41000, to: 41009 },
    { from: 42000, to: 42000 },
  ]);
  assert.equal(s.ROTATE_TIMEOUT_MS, 1500);
  assert.equal(s.ROTATE_SEND_GRACE_MS, undefined);
  assert.equal(s.LEDGER_TABLE, "portledger");
  assert.deepEqual(loadRolloutSettings({}).RELAY_PORT_RANGES, [{ from: 21000, to: 21999 }]);
});

test("local.settings.json.example sets every variable a deployment sets, and the schema accepts it", () => {
  const example = JSON.parse(
    readFileSync(join(REPO_ROOT, "cloud/functions/local.settings.json.example"), "utf8"),
  ) as { Values: Record<string, string> };
  for (const s of describeSettings()) {
    if (s.deploy !== "local") assert.ok(s.name in example.Values, `${s.name} is in the example`);
  }
  assert.doesNotThrow(() => loadFunctionsAppSettings(example.Values));
});
