/**
 * The emulator's pure parts: longest-prefix, case-insensitive entity lookup (property-tested),
 * rule management, SAS authorization across namespace/entity rules and keys, option validation.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { audienceFor, createSasToken } from "../../lib/hyco/sas.ts";
import { authorize } from "../../sim/relay-emulator/auth.ts";
import { Namespace, ROOT_RULE_NAME } from "../../sim/relay-emulator/namespace.ts";
import { resolveOptions } from "../../sim/relay-emulator/options.ts";

const segment = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,6}$/);
const hcName = fc.array(segment, { minLength: 1, maxLength: 3 }).map((s) => s.join("/"));

test("resolve picks the longest configured name that prefixes the path at a '/' boundary", () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(hcName, { minLength: 1, maxLength: 6 }),
      fc.array(segment, { maxLength: 2 }),
      fc.nat(),
      (names, extra, pick) => {
        const ns = new Namespace(
          "k",
          [],
          names.map((name) => ({ name })),
        );
        const base = names[pick % names.length]!;
        const path = [base, ...extra].join("/");
        const mixed = path.toUpperCase();
        const r = ns.resolve(mixed);
        assert.ok(r, "a configured name always resolves");
        // the match is a configured name that prefixes the path, and no longer one does
        const key = r.hc.name.toLowerCase();
        assert.ok(path === key || path.startsWith(`${key}/`));
        for (const n of names) {
          if (n.length > key.length)
            assert.ok(!(path === n || path.startsWith(`${n}/`)), `${n} is longer and matches`);
        }
        assert.equal(r.suffix.toLowerCase(), path.slice(key.length));
      },
    ),
  );
});

test("resolve does not match inside a segment and names are validated", () => {
  const ns = new Namespace("k", [], [{ name: "site-1" }, { name: "a.b/c" }]);
  assert.equal(ns.resolve("site-10"), undefined);
  assert.equal(ns.resolve("site-1/x")?.hc.name, "site-1");
  assert.equal(ns.resolve("A.B/C")?.hc.name, "a.b/c");
  for (const bad of ["", "/x", "x/", "a//b", "sp ace", "é", "x".repeat(261)]) {
    assert.throws(() => ns.putHybridConnection(bad), { code: "RF_ERR_RELAYEMU_INVALID" }, bad);
  }
  assert.throws(() => ns.putRule("nope", "r", ["Listen"]), { code: "RF_ERR_RELAYEMU_NOT_FOUND" });
  assert.throws(() => ns.putRule(undefined, "r", ["Manage"]), { code: "RF_ERR_RELAYEMU_INVALID" });
  assert.throws(() => ns.putRule(undefined, "r", []), { code: "RF_ERR_RELAYEMU_INVALID" });
});

test("rules: put keeps keys, regenerate replaces one, delete removes", () => {
  const ns = new Namespace(undefined, [], [{ name: "hc" }]);
  const root = ns.getRule(undefined, ROOT_RULE_NAME)!;
  assert.deepEqual(root.rights, ["Manage", "Listen", "Send"]);
  const { rule } = ns.putRule("hc", "l", ["Listen", "Listen"]);
  assert.deepEqual(rule.rights, ["Listen"]);
  const before = { ...rule };
  ns.putRule("hc", "l", ["Listen", "Send"]);
  assert.equal(ns.getRule("hc", "l")!.primaryKey, before.primaryKey);
  ns.regenerateKey("hc", "l", "SecondaryKey");
  assert.equal(ns.getRule("hc", "l")!.primaryKey, before.primaryKey);
  assert.notEqual(ns.getRule("hc", "l")!.secondaryKey, before.secondaryKey);
  assert.equal(ns.deleteRule("hc", "l"), true);
  assert.equal(ns.getRule("hc", "l"), undefined);
});

test("authorize: entity and namespace rules, both keys, rights, audiences", () => {
  const host = "sb://127.0.0.1:5000";
  const ns = new Namespace(
    "root-key",
    [{ name: "both", rights: ["Send"], primaryKey: "ns-key" }],
    [
      {
        name: "hc",
        authorizationRules: [{ name: "both", rights: ["Listen"], primaryKey: "p", secondaryKey: "s" }],
      },
      { name: "other" },
    ],
  );
  const hc = ns.get("hc")!;
  const tok = (path: string, skn: string, key: string) => createSasToken(audienceFor(host, path), skn, key);
  // same rule name at both levels: rights come from the rule whose key signed
  assert.equal(authorize(ns, hc, "Listen", tok("hc", "both", "p")).ok, true);
  assert.equal(authorize(ns, hc, "Listen", tok("hc", "both", "s")).ok, true);
  assert.equal(authorize(ns, hc, "Send", tok("hc", "both", "ns-key")).ok, true);
  const noRight = authorize(ns, hc, "Send", tok("hc", "both", "p"));
  assert.equal(noRight.ok === false && noRight.status, 403);
  // namespace audience covers every entity; a suffix audience is covered; another entity is 403
  assert.equal(authorize(ns, hc, "Listen", tok("", ROOT_RULE_NAME, "root-key")).ok, true);
  assert.equal(
    authorize(ns, hc, "Listen", tok("hc/sub", ROOT_RULE_NAME, "root-key"), { suffix: "/sub/x" }).ok,
    true,
  );
  const other = authorize(ns, hc, "Listen", tok("other", ROOT_RULE_NAME, "root-key"));
  assert.equal(other.ok === false && other.status, 403);
  // missing / unknown rule / wrong key
  for (const t of [undefined, tok("hc", "nobody", "x"), tok("hc", "both", "wrong"), "junk"]) {
    const r = authorize(ns, hc, "Listen", t);
    assert.equal(r.ok === false && r.status, 401);
  }
  // the namespace itself (admin API): entity-scoped tokens are not enough
  assert.equal(authorize(ns, undefined, "Manage", tok("", ROOT_RULE_NAME, "root-key")).ok, true);
  const scoped = authorize(ns, undefined, "Manage", tok("hc", ROOT_RULE_NAME, "root-key"));
  assert.equal(scoped.ok === false && scoped.status, 403);
});

test("authorize never throws on arbitrary token strings", () => {
  const ns = new Namespace("k", [], [{ name: "hc" }]);
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string(),
        fc.string().map((s) => `SharedAccessSignature ${s}`),
      ),
      (token) => {
        const r = authorize(ns, ns.get("hc"), "Listen", token);
        assert.equal(r.ok, false);
      },
    ),
  );
});

test("options: defaults and validation", () => {
  const o = resolveOptions();
  assert.equal(o.maxListenersPerHybridConnection, 25);
  assert.equal(o.rendezvousTimeoutMs, 30_000);
  assert.equal(o.rendezvousTimeoutStatus, 504);
  assert.equal(o.listenerQuotaStatus, 403);
  assert.ok(o.maxMessageBytes >= 16 * 1024 * 1024);
  assert.equal(o.controlIdleTimeoutMs, 0);
  assert.equal(resolveOptions({ port: undefined }).port, 0);
  assert.throws(() => resolveOptions({ rendezvousTimeoutMs: 0 }), RangeError);
  assert.throws(() => resolveOptions({ listenerQuotaStatus: 200 }), RangeError);
  assert.throws(() => resolveOptions({ lowWaterMarkBytes: 10, highWaterMarkBytes: 5 }), RangeError);
  assert.throws(() => resolveOptions({ abnormalCloseCode: 1000 }), RangeError);
});

test("authorize: a token verified before is still refused once its key is regenerated, its rights removed or it expires", () => {
  const host = "sb://127.0.0.1:5000";
  const ns = new Namespace(
    "root-key",
    [],
    [{ name: "hc", authorizationRules: [{ name: "l", rights: ["Listen"] }] }],
  );
  const hc = ns.get("hc")!;
  const key = ns.getRule("hc", "l")!.primaryKey;
  const token = createSasToken(audienceFor(host, "hc"), "l", key, { ttlSeconds: 600 });
  const now = Math.floor(Date.now() / 1000);
  // verified twice: the second answer comes from the emulator's verification cache
  assert.equal(authorize(ns, hc, "Listen", token).ok, true);
  assert.equal(authorize(ns, hc, "Listen", token).ok, true);
  assert.deepEqual(authorize(ns, hc, "Listen", token, { nowSeconds: now + 601 }), {
    ok: false,
    status: 401,
    description: "ExpiredToken: The token is expired",
  });
  assert.equal(authorize(ns, hc, "Send", token).ok, false, "rights come from the rule on every call");
  ns.regenerateKey("hc", "l", "PrimaryKey");
  assert.equal(authorize(ns, hc, "Listen", token).ok, false, "a regenerated key invalidates the token");
  ns.regenerateKey("hc", "l", "SecondaryKey", key);
  assert.equal(authorize(ns, hc, "Listen", token).ok, true, "the same key as secondary is valid again");
  ns.deleteRule("hc", "l");
  assert.equal(authorize(ns, hc, "Listen", token).ok, false);
});
