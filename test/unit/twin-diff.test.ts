import assert from "node:assert/strict";
import { test } from "node:test";
import { type DesiredPropertiesInput, DesiredPropertiesSchema, diffConfig } from "../../lib/twin/index.ts";

const relay = {
  endpoint: "sb://ns.servicebus.windows.net",
  hybridConnection: "site-1",
  sasKeyName: "listen",
  sasKey: "k1",
};
const cfg = (d: DesiredPropertiesInput) => DesiredPropertiesSchema.parse(d);
const base = cfg({ relay, mappings: { a: { target: "h:1" }, b: { target: "h:2" } } });

const cases: Array<{ name: string; next: DesiredPropertiesInput; kinds: string[] }> = [
  { name: "no change", next: { relay, mappings: { a: { target: "h:1" }, b: { target: "h:2" } } }, kinds: [] },
  {
    name: "only key changed: renew",
    next: { relay: { ...relay, sasKey: "k2" }, mappings: { a: { target: "h:1" }, b: { target: "h:2" } } },
    kinds: ["relay-credentials"],
  },
  {
    name: "key name changed: renew",
    next: { relay: { ...relay, sasKeyName: "l2" }, mappings: { a: { target: "h:1" }, b: { target: "h:2" } } },
    kinds: ["relay-credentials"],
  },
  {
    name: "hc changed: re-register",
    next: {
      relay: { ...relay, hybridConnection: "site-2", sasKey: "k2" },
      mappings: { a: { target: "h:1" }, b: { target: "h:2" } },
    },
    kinds: ["relay-changed"],
  },
  {
    name: "relay removed",
    next: { mappings: { a: { target: "h:1" }, b: { target: "h:2" } } },
    kinds: ["relay-removed"],
  },
  {
    name: "mapping added",
    next: { relay, mappings: { a: { target: "h:1" }, b: { target: "h:2" }, c: { target: "h:3" } } },
    kinds: ["mapping-added:c"],
  },
  {
    name: "mapping removed",
    next: { relay, mappings: { a: { target: "h:1" } } },
    kinds: ["mapping-removed:b"],
  },
  {
    name: "mapping updated",
    next: { relay, mappings: { a: { target: "h:9", maxConnections: 3 }, b: { target: "h:2" } } },
    kinds: ["mapping-updated:a:target,maxConnections"],
  },
  {
    name: "mapping disabled",
    next: { relay, mappings: { a: { target: "h:1", enabled: false }, b: { target: "h:2" } } },
    kinds: ["mapping-disabled:a:enabled"],
  },
  {
    name: "drain changed",
    next: { relay, mappings: { a: { target: "h:1" }, b: { target: "h:2" } }, drain: { onRemove: "close" } },
    kinds: ["drain-changed"],
  },
];

for (const tc of cases) {
  test(`diffConfig: ${tc.name}`, () => {
    const kinds = diffConfig(base, cfg(tc.next)).map((c) => {
      if ("name" in c) return [c.kind, c.name, ...("changed" in c ? [c.changed.join(",")] : [])].join(":");
      return c.kind;
    });
    assert.deepEqual(kinds, tc.kinds);
  });
}

test("diffConfig: enabling again and relay added from nothing", () => {
  const off = cfg({ mappings: { a: { target: "h:1", enabled: false } } });
  const on = cfg({ relay, mappings: { a: { target: "h:1" } } });
  assert.deepEqual(
    diffConfig(off, on).map((c) => c.kind),
    ["relay-added", "mapping-enabled"],
  );
});
