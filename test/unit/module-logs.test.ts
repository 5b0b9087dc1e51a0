/** Secrets never reach the module's logs: keys in configs, tokens in URLs, connection strings. */
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { Writable } from "node:stream";
import { test } from "node:test";
import { createLogger } from "../../lib/log.ts";
import { defaultConfig, validateDesired } from "../../lib/twin/index.ts";
import { allowlistFrom } from "../../modules/relayListener/src/allowlist.ts";
import { Reconciler } from "../../modules/relayListener/src/reconciler.ts";

const SECRET = "S3cr3tKeyValue+/=abcdefghijklmnop";

test("desired config, changes and errors logged by the module never contain the key", async () => {
  let out = "";
  const logger = createLogger("t", {
    level: "debug",
    destination: new Writable({
      write: (c, _e, cb) => {
        out += c.toString();
        cb();
      },
    }),
  });
  const relay = {
    endpoint: "sb://ns.servicebus.windows.net",
    hybridConnection: "site-1",
    sasKeyName: "listen",
    sasKey: SECRET,
  };
  const rec = new Reconciler({
    listenerFactory: () =>
      Object.assign(new EventEmitter(), {
        state: { status: "online" as const, since: 0 },
        start() {},
        async close() {},
        updateCredentials() {},
      }),
    listenerCount: 1,
    allowlist: allowlistFrom("10.0.0.0/8"),
    logger,
    preambleTimeoutMs: 100,
    keepAliveMs: 1000,
  });
  await rec.applyDesired({ relay, mappings: { a: { target: "10.0.0.1:22" }, b: { target: "x" } } }, 2);
  await rec.applyDesired({ relay: { ...relay, sasKey: 5 }, mappings: {} }, 3);
  logger.info({ config: rec.config }, "config dump");
  logger.info({ desired: { relay } }, "raw desired");
  logger.info(`url wss://h/$hc/x?sb-hc-token=SharedAccessSignature%20sr%3Dx%26sig%3D${SECRET}`);
  logger.warn({ err: new Error(`HostName=h;DeviceId=d;SharedAccessKey=${SECRET}`) }, "failure");
  logger.info(
    { errors: validateDesired({ relay: { ...relay, endpoint: 1 } }, defaultConfig()).errors },
    "errors",
  );
  await rec.shutdown(0);
  assert.ok(out.includes("configuration applied"), "the logs were not captured");
  assert.ok(!out.includes(SECRET), `secret in logs:\n${out}`);
  assert.ok(!out.includes("S3cr3tKey"), "part of the secret in logs");
});
