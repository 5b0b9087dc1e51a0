/**
 * lib/log redacts by shape, not only by listed paths: secret-named fields at any depth
 * (`sendKey`, `manageKey`, `serviceConnectionString`, `x-functions-key`) and secrets inside every
 * string, the `{ err: message }` strings included; identifiers that merely look alike stay.
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { createLogger, redactDeep, redactSecrets } from "../../lib/log.ts";

const KEY = "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWo=";

function capture(): { logger: ReturnType<typeof createLogger>; text: () => string } {
  let out = "";
  const logger = createLogger("t", {
    destination: new Writable({
      write: (c, _e, cb) => {
        out += c.toString();
        cb();
      },
    }),
  });
  return { logger, text: () => out };
}

test("secret-named fields are masked at any depth, identifiers kept", () => {
  const { logger, text } = capture();
  logger.info(
    {
      site: { routes: [{ relay: { sendKey: KEY, keyFingerprint: "ab12" } }] },
      deeper: { a: { b: { c: { manageKey: KEY, manageKeyName: "RootManageSharedAccessKey" } } } },
      serviceConnectionString: `HostName=h;SharedAccessKeyName=iothubowner;SharedAccessKey=${KEY}`,
      headers: { "x-functions-key": KEY },
      partitionKey: "plant-1",
    },
    "state",
  );
  const line = text();
  assert.equal(line.includes(KEY), false, line);
  assert.match(line, /"keyFingerprint":"ab12"/);
  assert.match(line, /"manageKeyName":"RootManageSharedAccessKey"/);
  assert.match(line, /"partitionKey":"plant-1"/);
});

test("error strings and messages carrying tokens, connection strings or a function key are masked", () => {
  const { logger, text } = capture();
  logger.warn(
    { err: `connect wss://ns/$hc/site-1?sb-hc-token=SharedAccessSignature%20sr%3Dx&sig=${KEY}` },
    "a",
  );
  logger.warn({ err: `bad connection string HostName=h;SharedAccessKey=${KEY}` }, "b");
  logger.warn({ url: `http://127.0.0.1:1/runtime/webhooks/EventGrid?functionName=f&code=${KEY}` }, "c");
  logger.error({ err: new Error(`failed with AccountKey=${KEY};`) }, "d");
  logger.info(`free text SharedAccessKey=${KEY}`);
  assert.equal(text().includes(KEY), false, text());
  assert.equal(text().split("\n").filter(Boolean).length, 5);
});

test("redactDeep copies (the caller's object is untouched) and survives cycles", () => {
  const value: Record<string, unknown> = { sasKey: KEY };
  value.self = value;
  const out = redactDeep(value) as Record<string, unknown>;
  assert.equal(value.sasKey, KEY);
  assert.equal(out.sasKey, "[REDACTED]");
  assert.equal(out.self, "[…]");
  assert.equal(redactSecrets(`x-functions-key: ${KEY}`).includes(KEY), false);
});
