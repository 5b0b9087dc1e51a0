/** The relayListener module's environment (`modules/relayListener/src/settings.ts`, one zod schema). */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { hasErrorCode } from "../../lib/errors.ts";
import { readSettings } from "../../modules/relayListener/src/settings.ts";

function withAllowlist(t: { after(fn: () => void): void }): NodeJS.ProcessEnv {
  const dir = mkdtempSync(join(tmpdir(), "module-settings-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "allowlist.txt");
  writeFileSync(file, "127.0.0.1:22\n");
  return { RELAY_ALLOWLIST_FILE: file };
}

test("defaults: what a site runs", (t) => {
  const s = readSettings(withAllowlist(t));
  assert.equal(s.metricsPort, undefined);
  assert.equal(s.metricsHost, "0.0.0.0");
  assert.equal(s.listenerCount, 2);
  assert.equal(s.reportIntervalMs, 5_000);
  assert.equal(s.twinTimeoutMs, 15_000);
  assert.deepEqual(s.standby, { max: 64, idleMs: 300_000 });
  assert.equal(s.relayRetryPeriodMs, 6_000);
  assert.equal(s.ignoredAllowlistEnv, false);
});

test("values are read, empty means default", (t) => {
  const s = readSettings({
    ...withAllowlist(t),
    METRICS_PORT: "0",
    RELAY_LISTENER_COUNT: "",
    STANDBY_MAX: "0",
    RELAY_RETRY_PERIOD_MS: "50",
    RELAY_ALLOWED_TARGETS: "10.0.0.0/8:*",
  });
  assert.equal(s.metricsPort, 0);
  assert.equal(s.listenerCount, 2);
  assert.equal(s.standby.max, 0);
  assert.equal(s.relayRetryPeriodMs, 50);
  assert.equal(s.ignoredAllowlistEnv, true);
});

test("a bad value is refused, naming every variable with its range", (t) => {
  try {
    readSettings({ ...withAllowlist(t), RELAY_LISTENER_COUNT: "9", TWIN_TIMEOUT_MS: "soon" });
    assert.fail("accepted");
  } catch (err) {
    assert.ok(hasErrorCode(err, "RF_ERR_MODULE_SETTING"), String(err));
    assert.match((err as Error).message, /RELAY_LISTENER_COUNT=9 must be an integer 1-8/);
    assert.match((err as Error).message, /TWIN_TIMEOUT_MS=soon must be an integer 100-600000/);
  }
});
