import assert from "node:assert/strict";
import { test } from "node:test";
import { HubError } from "../../sim/iothub-emulator/errors.ts";
import { evaluate } from "../../sim/iothub-emulator/query/evaluate.ts";
import { parseCondition, parseQuery } from "../../sim/iothub-emulator/query/parse.ts";
import { QueryThrottle } from "../../sim/iothub-emulator/query/throttle.ts";

const twin = {
  deviceId: "site-1",
  tags: { site: "s1", ports: 3, relay: { enabled: true }, "odd-name": "x" },
  properties: { desired: { $version: 4 }, reported: { status: "online", n: 2.5 } },
  capabilities: { iotEdge: true },
};

const matches = (cond: string) => evaluate(parseCondition(cond), twin);

test("comparisons on strings, numbers, booleans and dotted paths", () => {
  assert.equal(matches("tags.site = 's1'"), true);
  assert.equal(matches('tags.site = "s1"'), true);
  assert.equal(matches("tags.site != 's1'"), false);
  assert.equal(matches("tags.site <> 's2'"), true);
  assert.equal(matches("tags.ports > 2 AND tags.ports <= 3"), true);
  assert.equal(matches("tags.ports < -1"), false);
  assert.equal(matches("properties.reported.n >= 2.5"), true);
  assert.equal(matches("tags.relay.enabled = true"), true);
  assert.equal(matches("capabilities.iotEdge = false"), false);
  assert.equal(matches("properties.desired.$version = 4"), true);
  assert.equal(matches("tags.odd-name = 'x'"), true);
});

test("AND binds tighter than OR; NOT and parentheses", () => {
  assert.equal(matches("tags.site = 'no' AND tags.ports = 3 OR deviceId = 'site-1'"), true);
  assert.equal(matches("tags.site = 'no' AND (tags.ports = 3 OR deviceId = 'site-1')"), false);
  assert.equal(matches("NOT tags.site = 's2'"), true);
  assert.equal(matches("NOT (tags.site = 's1' OR tags.ports = 0)"), false);
});

test("IS_DEFINED and comparisons with missing properties", () => {
  assert.equal(matches("IS_DEFINED(tags.relay)"), true);
  assert.equal(matches("IS_DEFINED(tags.nothing)"), false);
  assert.equal(matches("NOT IS_DEFINED(tags.nothing)"), true);
  // A missing property compares as undefined: neither equal nor unequal.
  assert.equal(matches("tags.nothing = 's1'"), false);
  assert.equal(matches("tags.nothing != 's1'"), false);
  // Mixed types never order.
  assert.equal(matches("tags.site > 1"), false);
});

test("queries: sources, COUNT, quoting, case-insensitive keywords", () => {
  assert.equal(parseQuery("select * from devices").source, "devices");
  assert.equal(
    parseQuery("SELECT * FROM devices.modules WHERE moduleId = 'relayListener'").source,
    "devices.modules",
  );
  assert.equal(parseQuery("SELECT COUNT() AS n FROM devices").countAs, "n");
  assert.equal(matches("tags.site = 's''1'"), false);
  assert.equal(evaluate(parseCondition("*"), twin), true);
});

test("malformed queries are 400 HubErrors naming the position", () => {
  for (const q of [
    "",
    "SELECT deviceId FROM devices",
    "SELECT * FROM jobs",
    "SELECT * FROM devices WHERE",
    "SELECT * FROM devices WHERE tags.a = 'x",
    "SELECT * FROM devices WHERE tags.a = 1 extra",
    "SELECT * FROM devices WHERE IS_DEFINED('x')",
    "SELECT * FROM devices WHERE tags.a ~ 1",
  ]) {
    assert.throws(
      () => parseQuery(q),
      (err: unknown) => err instanceof HubError && err.status === 400,
      q,
    );
  }
});

test("the query throttle allows N per minute, then 429", () => {
  const t = new QueryThrottle(2);
  t.take(1000);
  t.take(2000);
  assert.throws(
    () => t.take(3000),
    (err: unknown) => err instanceof HubError && err.status === 429,
  );
  t.take(62_000);
  new QueryThrottle(0).take();
});

test("any text either parses or fails with a 400 HubError, never anything else", async () => {
  const fc = (await import("fast-check")).default;
  const pieces = fc.constantFrom(
    "SELECT",
    "*",
    "FROM",
    "devices",
    "devices.modules",
    "WHERE",
    "AND",
    "OR",
    "NOT",
    "(",
    ")",
    "=",
    "!=",
    "<",
    ">=",
    "'s'",
    "'",
    "1",
    "-2.5",
    "true",
    "null",
    "tags.a",
    "IS_DEFINED",
    "COUNT()",
    "AS",
    '"x"',
    "$",
  );
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string(),
        fc.array(pieces, { maxLength: 12 }).map((a) => a.join(" ")),
      ),
      (text) => {
        try {
          const q = parseQuery(text);
          evaluate(q.where, twin);
        } catch (err) {
          assert.ok(err instanceof HubError && err.status === 400, String(err));
        }
      },
    ),
    { numRuns: 2000 },
  );
});
