import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { Ajv2020 } from "ajv/dist/2020.js";
import { TWIN_SCHEMA_PATH, twinJsonSchema, twinJsonSchemaText } from "../../lib/twin/index.ts";
import { REPO_ROOT } from "../helpers/index.ts";

test("committed twin JSON Schema equals the generated one (run `npm run manifests` if not)", () => {
  // Compared as JSON values: the formatter (Biome) may lay the committed file out differently.
  const committed: unknown = JSON.parse(readFileSync(join(REPO_ROOT, TWIN_SCHEMA_PATH), "utf8"));
  assert.deepEqual(committed, JSON.parse(twinJsonSchemaText()));
});

test("the JSON Schema accepts a full twin example and rejects what zod rejects", () => {
  const ajv = new Ajv2020({ strict: false });
  const validate = ajv.compile(twinJsonSchema());
  const example = {
    schemaVersion: "1.0",
    relay: {
      endpoint: "sb://ns.servicebus.windows.net",
      hybridConnection: "site-0042",
      sasKeyName: "listen",
      sasKey: "s",
    },
    mappings: {
      rdp: {
        target: "10.0.0.5:3389",
        enabled: true,
        maxConnections: 50,
        connectTimeoutMs: 5000,
        idleTimeoutMs: 0,
        proxyProtocol: "none",
      },
    },
    drain: { onRemove: "drain", timeoutMs: 30000 },
  };
  assert.equal(validate(example), true, JSON.stringify(validate.errors));
  assert.equal(validate({ mappings: { "a.b": { target: "h:1" } } }), false);
  assert.equal(validate({ mappings: { a: { target: "h:1", extra: 1 } } }), false);
  assert.equal(
    validate({ relay: { endpoint: "https://x", hybridConnection: "h", sasKeyName: "l", sasKey: "k" } }),
    false,
  );
});

test("sasKey is marked writeOnly in the JSON Schema", () => {
  const text = twinJsonSchemaText();
  const schema = JSON.parse(text) as {
    properties: { relay: { properties: { sasKey: { writeOnly?: boolean } } } };
  };
  assert.equal(schema.properties.relay.properties.sasKey.writeOnly, true);
});
