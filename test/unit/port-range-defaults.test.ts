/**
 * Issue 11, item 15: the public ports a deployment and the simulation hand out by default lie
 * outside Linux's ephemeral range, where the gateway's own outgoing connections could take one
 * before the gateway listens on it; nor does a server port the simulation fixes before its server starts.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { loadRolloutSettings } from "../../cloud/functions/src/settings.ts";
import {
  DEFAULT_PUBLIC_PORT_RANGES,
  LINUX_EPHEMERAL_RANGE,
  overlapWith,
  parsePortRanges,
} from "../../lib/ledger/index.ts";
import { freePortBlock, freeServerPort } from "../../sim/ports.ts";

test("the production default range is outside 32768-60999", () => {
  const ranges = loadRolloutSettings({}).RELAY_PORT_RANGES;
  assert.deepEqual(ranges, parsePortRanges(DEFAULT_PUBLIC_PORT_RANGES));
  assert.deepEqual(overlapWith(ranges, LINUX_EPHEMERAL_RANGE), []);
});

test("the simulation's public port block is outside 32768-60999", async () => {
  for (let i = 0; i < 5; i++) {
    const block = await freePortBlock(64);
    assert.deepEqual(overlapWith([block], LINUX_EPHEMERAL_RANGE), [], `${block.from}-${block.to}`);
    assert.equal(block.to - block.from + 1, 64);
  }
});

test("a server port fixed before its server starts is outside the ephemeral range and the public blocks", async () => {
  for (let i = 0; i < 5; i++) {
    const port = await freeServerPort();
    assert.deepEqual(overlapWith([{ from: port, to: port }], LINUX_EPHEMERAL_RANGE), [], String(port));
    for (const range of parsePortRanges(DEFAULT_PUBLIC_PORT_RANGES)) {
      assert.deepEqual(
        overlapWith([{ from: port, to: port }], range),
        [],
        `${port} in the default public range`,
      );
    }
    assert.ok(port < 22_000, `${port} lies in the simulation's public blocks`);
  }
});

test("overlapWith finds the part of a range inside another", () => {
  assert.deepEqual(overlapWith([{ from: 30000, to: 33000 }], LINUX_EPHEMERAL_RANGE), [
    { from: 32768, to: 33000 },
  ]);
  assert.deepEqual(overlapWith([{ from: 61000, to: 61010 }], LINUX_EPHEMERAL_RANGE), []);
});
