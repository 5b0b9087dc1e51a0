import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  DesiredPropertiesSchema,
  defaultConfig,
  MAX_MAPPINGS,
  type RelayListenerConfig,
  validateDesired,
} from "../../lib/twin/index.ts";

const relay = {
  endpoint: "sb://ns.servicebus.windows.net",
  hybridConnection: "site-0042",
  sasKeyName: "listen",
  sasKey: "k1",
};
const good: RelayListenerConfig = DesiredPropertiesSchema.parse({
  relay,
  mappings: { rdp: { target: "10.0.0.5:3389", maxConnections: 50 }, ssh: { target: "plc.local:22" } },
  drain: { onRemove: "close", timeoutMs: 1000 },
});

describe("validateDesired", () => {
  test("a valid document fills defaults and has no errors", () => {
    const { config, errors } = validateDesired(
      { relay, mappings: { rdp: { target: "10.0.0.5:3389" } }, $version: 4 },
      defaultConfig(),
    );
    assert.deepEqual(errors, []);
    assert.deepEqual(config.mappings.rdp, {
      target: "10.0.0.5:3389",
      enabled: true,
      maxConnections: 100,
      connectTimeoutMs: 5000,
      idleTimeoutMs: 0,
      proxyProtocol: "none",
    });
    assert.equal(config.schemaVersion, "1.1");
    assert.deepEqual(config.drain, { onRemove: "drain", timeoutMs: 30000 });
  });

  const cases: Array<{
    name: string;
    raw: unknown;
    paths: string[];
    check: (c: RelayListenerConfig) => void;
  }> = [
    {
      name: "bad target keeps the old mapping, others applied",
      raw: { relay, mappings: { rdp: { target: "10.0.0.5" }, ssh: { target: "plc.local:2222" } } },
      paths: ["mappings.rdp.target"],
      check: (c) => {
        assert.equal(c.mappings.rdp?.target, "10.0.0.5:3389");
        assert.equal(c.mappings.ssh?.target, "plc.local:2222");
      },
    },
    {
      name: "bad new mapping is not added, a good new one is",
      raw: {
        relay,
        mappings: { ...good.mappings, web: { target: "h:0" }, hmi: { target: "[fd00::5]:443" } },
      },
      paths: ["mappings.web.target"],
      check: (c) => {
        assert.equal(c.mappings.web, undefined);
        assert.equal(c.mappings.hmi?.target, "[fd00::5]:443");
        assert.ok(c.mappings.rdp);
      },
    },
    {
      name: "unknown field in a mapping is an error (strict)",
      raw: { relay, mappings: { rdp: { target: "10.0.0.5:3389", maxConnection: 5 } } },
      paths: ["mappings.rdp"],
      check: (c) => assert.equal(c.mappings.rdp?.maxConnections, 50),
    },
    {
      name: "bad relay keeps the old relay, mappings still applied",
      raw: {
        relay: { ...relay, endpoint: "https://x", sasKey: "k2" },
        mappings: { rdp: { target: "10.0.0.6:3389" } },
      },
      paths: ["relay.endpoint"],
      check: (c) => {
        assert.equal(c.relay?.sasKey, "k1");
        assert.equal(c.mappings.rdp?.target, "10.0.0.6:3389");
        assert.equal(c.mappings.ssh, undefined);
      },
    },
    {
      name: "missing relay key is 'is required'",
      raw: { relay: { endpoint: relay.endpoint, hybridConnection: "h", sasKeyName: "l" }, mappings: {} },
      paths: ["relay.sasKey"],
      check: (c) => assert.equal(c.relay?.hybridConnection, "site-0042"),
    },
    {
      name: "invalid mapping name is ignored with an error",
      raw: { relay, mappings: { "bad name": { target: "a:1" }, ok: { target: "a:1" } } },
      paths: ["mappings.bad name"],
      check: (c) => assert.deepEqual(Object.keys(c.mappings), ["ok"]),
    },
    {
      name: "mappings not an object keeps all old mappings",
      raw: { relay, mappings: [1, 2] },
      paths: ["mappings"],
      check: (c) => assert.deepEqual(Object.keys(c.mappings).sort(), ["rdp", "ssh"]),
    },
    {
      name: "bad drain keeps the old drain",
      raw: { relay, mappings: good.mappings, drain: { onRemove: "explode" } },
      paths: ["drain.onRemove"],
      check: (c) => assert.deepEqual(c.drain, { onRemove: "close", timeoutMs: 1000 }),
    },
    {
      name: "unsupported major schemaVersion applies nothing",
      raw: { schemaVersion: "2.0", mappings: {} },
      paths: ["schemaVersion"],
      check: (c) => assert.deepEqual(c, good),
    },
    {
      name: "unknown top-level field is reported and ignored",
      raw: { relay, mappings: good.mappings, drain: good.drain, color: "red" },
      paths: ["color"],
      check: (c) => assert.deepEqual(c.mappings, good.mappings),
    },
    {
      name: "not an object at all",
      raw: "hello",
      paths: [""],
      check: (c) => assert.deepEqual(c, good),
    },
    {
      name: "null mapping means removed",
      raw: { relay, mappings: { rdp: null, ssh: { target: "plc.local:22" } } },
      paths: [],
      check: (c) => assert.deepEqual(Object.keys(c.mappings), ["ssh"]),
    },
    {
      name: "too many mappings: the excess is rejected one by one",
      raw: {
        relay,
        mappings: Object.fromEntries(
          Array.from({ length: MAX_MAPPINGS + 2 }, (_, i) => [`m${i}`, { target: "a:1" }]),
        ),
      },
      paths: [`mappings.m${MAX_MAPPINGS}`, `mappings.m${MAX_MAPPINGS + 1}`],
      check: (c) => assert.equal(Object.keys(c.mappings).length, MAX_MAPPINGS),
    },
  ];

  for (const tc of cases) {
    test(tc.name, () => {
      const { config, errors } = validateDesired(tc.raw, good);
      assert.deepEqual(
        errors.map((e) => e.path),
        tc.paths,
        JSON.stringify(errors),
      );
      for (const e of errors) assert.ok(e.message.length > 0 && e.message.length <= 160);
      tc.check(config);
    });
  }

  test("removing the relay section is honoured", () => {
    const { config, errors } = validateDesired({ mappings: {} }, good);
    assert.deepEqual(errors, []);
    assert.equal(config.relay, undefined);
  });

  test("error messages never contain the secret", () => {
    const { errors } = validateDesired({ relay: { ...relay, sasKey: 42 } }, good);
    assert.equal(errors[0]?.path, "relay.sasKey");
    assert.ok(!JSON.stringify(errors).includes("k1"));
  });
});
