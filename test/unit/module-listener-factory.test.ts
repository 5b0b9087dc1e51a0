import assert from "node:assert/strict";
import { test } from "node:test";
import type { HybridConnectionListener } from "../../lib/hyco/listener.ts";
import { createLogger } from "../../lib/log.ts";
import type { RelayConfig } from "../../lib/twin/index.ts";
import { createListenerFactory } from "../../modules/relayListener/src/listener-factory.ts";

const relay = {
  endpoint: "ws://127.0.0.1:1",
  hybridConnection: "site-a",
  sasKeyName: "listen",
  sasKey: "k",
} as unknown as RelayConfig;

test("the module's channels retry on slots spread evenly over the period, one random draw per module", () => {
  const factory = createListenerFactory({
    ca: undefined,
    count: 2,
    retryPeriodMs: 6_000,
    logger: createLogger("t", { level: "silent" }),
    random: () => 0.3,
  });
  const slots = [0, 1].map((i) => (factory(relay, i) as unknown as HybridConnectionListener).retrySlot);
  assert.deepEqual(
    slots.map((s) => s.periodMs),
    [6_000, 6_000],
  );
  assert.ok(Math.abs((slots[0]?.phase ?? 0) - 0.3) < 1e-9);
  assert.ok(Math.abs((slots[1]?.phase ?? 0) - 0.8) < 1e-9, "the second channel half a period later");
  // A new relay section builds new listeners with the same indices: the same slots.
  assert.deepEqual((factory(relay, 1) as unknown as HybridConnectionListener).retrySlot, slots[1]);
});
