import assert from "node:assert/strict";
import { test } from "node:test";
import { parseServiceConnectionString } from "../../lib/azure/iothub-connection-string.ts";
import { hasErrorCode } from "../../lib/errors.ts";
import {
  createHubSasToken,
  generateKey,
  parseHubSasToken,
  verifyHubSasToken,
} from "../../sim/iothub-emulator/auth.ts";
import { HubError } from "../../sim/iothub-emulator/errors.ts";

const key = generateKey();
const resource = "hub.example/devices/d1/modules/m1";
const is401 = (err: unknown) => err instanceof HubError && err.status === 401;

test("a token verifies for its resource and for resources below it", () => {
  const token = createHubSasToken(resource, key);
  assert.equal(verifyHubSasToken(token, [key], resource).resource, resource);
  const deviceToken = createHubSasToken("hub.example/devices/d1", key);
  verifyHubSasToken(deviceToken, [key], resource);
  // Case-insensitive like the hub; segment prefix only.
  verifyHubSasToken(createHubSasToken("HUB.example/devices/D1", key), [key], resource);
  assert.throws(
    () => verifyHubSasToken(createHubSasToken("hub.example/devices/d", key), [key], resource),
    is401,
  );
});

test("the secondary key works; a wrong key, an expired token and garbage do not", () => {
  const other = generateKey();
  verifyHubSasToken(createHubSasToken(resource, other), [key, other], resource);
  assert.throws(() => verifyHubSasToken(createHubSasToken(resource, other), [key], resource), is401);
  const expired = createHubSasToken(resource, key, { nowSeconds: 1000, ttlSeconds: 10 });
  assert.throws(() => verifyHubSasToken(expired, [key], resource), is401);
  for (const bad of [
    undefined,
    "",
    "Bearer x",
    "SharedAccessSignature sr=a",
    "SharedAccessSignature sr=%ZZ&sig=a&se=1",
  ]) {
    assert.throws(() => verifyHubSasToken(bad, [key], resource), is401);
  }
});

test("the SDK's token layout parses: sr, sig, optional skn, se", () => {
  const t = createHubSasToken("hub.example", key, { keyName: "iothubowner" });
  const p = parseHubSasToken(t);
  assert.equal(p.keyName, "iothubowner");
  assert.equal(p.resource, "hub.example");
  assert.equal(parseHubSasToken(createHubSasToken(resource, key)).keyName, undefined);
});

test("service connection strings keep base64 padding and name what is missing", () => {
  const cs = parseServiceConnectionString(
    "HostName=h.example;SharedAccessKeyName=iothubowner;SharedAccessKey=abc=",
  );
  assert.deepEqual(cs, {
    hostName: "h.example",
    sharedAccessKeyName: "iothubowner",
    sharedAccessKey: "abc=",
  });
  assert.throws(
    () => parseServiceConnectionString("HostName=h;SharedAccessKey=x"),
    (err: unknown) =>
      hasErrorCode(err, "RF_ERR_IOTHUB_CONNECTION_STRING") && /SharedAccessKeyName/.test(String(err)),
  );
});

test("the hub parses tokens with the one SAS codec: a field given twice is refused", () => {
  // The emulator's own parser took the last of two `sr` fields, while the signature check and
  // Azure Relay's codec take one; a token naming two resources is malformed, not one of them.
  const token = createHubSasToken(resource, key);
  assert.throws(() => parseHubSasToken(`${token}&sr=${encodeURIComponent("hub.example")}`), is401);
  assert.equal(parseHubSasToken(token).resource, resource);
});
