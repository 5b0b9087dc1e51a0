/**
 * The reconciler against fake listeners: targeted cases (only what changed is touched; a new key
 * renews credentials without replacing listeners) and a fast-check fuzz of random desired
 * patches (valid and invalid): it never throws and what it reports always matches what runs.
 */
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { Writable } from "node:stream";
import { test } from "node:test";
import fc from "fast-check";
import { keyFingerprint } from "../../lib/hyco/sas.ts";
import { createLogger } from "../../lib/log.ts";
import { type RelayConfig, validateDesired } from "../../lib/twin/index.ts";
import { applyMergePatch } from "../../lib/twin/merge-patch.ts";
import { allowlistFrom } from "../../modules/relayListener/src/allowlist.ts";
import { Reconciler } from "../../modules/relayListener/src/reconciler.ts";
import type { ListenerStateView, RelayListener } from "../../modules/relayListener/src/relay-listener.ts";

class FakeListener extends EventEmitter implements RelayListener {
  state: ListenerStateView = { status: "connecting", since: Date.now() };
  closed = false;
  constructor(public relay: RelayConfig) {
    super();
  }
  start() {
    this.state = { status: "online", since: Date.now() };
  }
  async close() {
    this.closed = true;
    this.state = { status: "closed", since: Date.now() };
  }
  updateCredentials(keyName: string, key: string) {
    this.relay = { ...this.relay, sasKeyName: keyName, sasKey: key as RelayConfig["sasKey"] };
  }
}

function makeReconciler() {
  const created: FakeListener[] = [];
  const sink = new Writable({ write: (_c, _e, cb) => cb() });
  const rec = new Reconciler({
    listenerFactory: (relay) => {
      const l = new FakeListener(relay);
      created.push(l);
      return l;
    },
    listenerCount: 2,
    allowlist: allowlistFrom("127.0.0.0/8:1-9998", async (h) => {
      if (h === "ok.example") return [{ address: "127.0.0.2", family: 4 }];
      throw Object.assign(new Error("nx"), { code: "ENOTFOUND" });
    }),
    logger: createLogger("test", { destination: sink, level: "silent" }),
    preambleTimeoutMs: 1000,
    keepAliveMs: 1000,
  });
  return { rec, created };
}

const relay = {
  endpoint: "sb://ns.servicebus.windows.net",
  hybridConnection: "site-1",
  sasKeyName: "listen",
  sasKey: "k1",
};

test("adding a mapping keeps the other mapping's runtime; a new key renews, never replaces listeners", async () => {
  const { rec, created } = makeReconciler();
  await rec.applyDesired({ relay, mappings: { a: { target: "127.0.0.1:80" } }, $version: 2 }, 2);
  const a = rec.mappings.get("a");
  assert.equal(created.length, 2);
  await rec.applyDesired(
    {
      relay: { ...relay, sasKey: "k2" },
      mappings: { a: { target: "127.0.0.1:80" }, b: { target: "127.0.0.1:81" } },
    },
    3,
  );
  assert.equal(rec.mappings.get("a"), a, "mapping a was replaced");
  assert.equal(created.length, 2, "listeners were replaced for a key change");
  assert.ok(created.every((l) => l.relay.sasKey === "k2" && !l.closed));
  await rec.applyDesired({ relay: { ...relay, hybridConnection: "site-2" }, mappings: {} }, 4);
  assert.equal(created.length, 4);
  assert.ok(created.slice(0, 2).every((l) => l.closed));
  assert.equal(rec.state().appliedDesiredVersion, 4);
});

const target = fc.constantFrom(
  "127.0.0.1:80",
  "127.0.0.1:9999",
  "ok.example:80",
  "bad.example:80",
  "nope",
  42,
  "[::1]:22",
);
const mapping = fc.oneof(
  fc.record(
    {
      target,
      enabled: fc.oneof(fc.boolean(), fc.constant("yes")),
      maxConnections: fc.oneof(fc.integer({ min: -1, max: 20 }), fc.constant(1.5)),
      proxyProtocol: fc.constantFrom("none", "strip", "forward", "bogus"),
      extra: fc.constant(1),
    },
    { requiredKeys: ["target"] },
  ),
  fc.constant(null),
  fc.string(),
);
const names = fc.constantFrom("a", "b", "c", "d", "bad name", "e-1");
const patch = fc.record(
  {
    schemaVersion: fc.constantFrom("1.0", "1.3", "2.0", 1),
    relay: fc.oneof(
      fc.constant(null),
      fc.record({
        endpoint: fc.constantFrom(relay.endpoint, "ws://127.0.0.1:1", "http://x"),
        hybridConnection: fc.constantFrom("site-1", "site-2"),
        sasKeyName: fc.constant("listen"),
        sasKey: fc.constantFrom("k1", "k2", ""),
      }),
    ),
    mappings: fc.oneof(fc.dictionary(names, mapping, { maxKeys: 4 }), fc.constant(null), fc.constant([1])),
    drain: fc.oneof(
      fc.record({
        onRemove: fc.constantFrom("drain", "close", "x"),
        timeoutMs: fc.integer({ min: -5, max: 10 }),
      }),
      fc.constant(null),
    ),
    junk: fc.anything(),
  },
  { requiredKeys: [] },
);

test("fuzz: random desired patches never crash and reported state matches what runs", async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(patch, { minLength: 1, maxLength: 8 }), async (patches) => {
      const { rec, created } = makeReconciler();
      let doc: Record<string, unknown> = {};
      let version = 1;
      for (const p of patches) {
        doc = applyMergePatch(doc, p as Record<string, unknown>);
        version++;
        await rec.applyDesired({ ...doc, $version: version }, version);
        const state = rec.state();
        const config = rec.config;
        assert.equal(state.appliedDesiredVersion, version);
        // The applied config is itself valid: re-validating it yields no errors.
        assert.deepEqual(validateDesired(config, config).errors, []);
        // Mappings: reported = configured (+ draining), states follow the config and allowlist.
        for (const [name, m] of Object.entries(config.mappings)) {
          const r = state.mappings[name];
          assert.ok(r, `mapping ${name} not reported`);
          assert.equal(r.target, m.target);
          if (!m.enabled) assert.equal(r.state, "disabled");
          // Outside the allowlist (127.0.0.0/8 ports 1-9998): port 9999, and IPv6 loopback.
          else if (m.target.endsWith(":9999") || m.target.startsWith("[::1]"))
            assert.equal(r.state, "refused");
          else if (m.target.startsWith("bad.example")) assert.equal(r.state, "error");
          else assert.equal(r.state, "active");
        }
        for (const name of Object.keys(state.mappings))
          assert.ok(name in config.mappings || state.mappings[name]?.state === "draining");
        // Listeners: exactly listenerCount live ones on the configured relay with the current key.
        const live = created.filter((l) => !l.closed);
        if (config.relay) {
          assert.equal(live.length, 2);
          for (const l of live) {
            assert.equal(l.relay.hybridConnection, config.relay.hybridConnection);
            assert.equal(l.relay.sasKey, config.relay.sasKey);
          }
          assert.equal(state.relay.keyFingerprint, keyFingerprint(config.relay.sasKey));
          assert.equal(state.relay.status, "online");
        } else {
          assert.equal(live.length, 0);
          assert.equal(state.relay.status, "unconfigured");
        }
        // Every reported error has a path and a message, and none carries a key.
        for (const e of state.errors) {
          assert.equal(typeof e.path, "string");
          assert.ok(e.message.length > 0);
        }
      }
      await rec.shutdown(0);
    }),
    { numRuns: 150 },
  );
});
