import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { FleetHub } from "../../cloud/functions/src/rollout/hub.ts";
import { withHubPacing } from "../../cloud/functions/src/rollout/hub-pacing.ts";

/** An SDK-shaped 429. */
const throttled = () => Object.assign(new Error("ThrottlingException"), { response: { statusCode: 429 } });

/** A fake hub whose ensureModule fails as told; the rest is never called here. */
function fakeHub(behaviour: (call: number) => Promise<void>) {
  let calls = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  const hub = {
    async ensureModule() {
      calls++;
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      try {
        await behaviour(calls);
      } finally {
        inFlight--;
      }
    },
  } as unknown as FleetHub;
  return { hub, stats: () => ({ calls, maxInFlight }) };
}

describe("withHubPacing", () => {
  test("a throttled operation is retried after a wait and then succeeds", async () => {
    const { hub, stats } = fakeHub(async (call) => {
      if (call <= 2) throw throttled();
    });
    const waits: number[] = [];
    const paced = withHubPacing(hub, { wait: async (ms) => void waits.push(ms) });
    await paced.ensureModule("d", "m");
    assert.equal(stats().calls, 3);
    assert.equal(waits.length, 2);
    assert.ok(
      waits.every((ms) => ms >= 500 && ms <= 2_000),
      `waits ${waits}`,
    );
  });

  test("other errors pass through at once", async () => {
    const { hub, stats } = fakeHub(async () => {
      throw Object.assign(new Error("nope"), { response: { statusCode: 400 } });
    });
    await assert.rejects(withHubPacing(hub).ensureModule("d", "m"), /nope/);
    assert.equal(stats().calls, 1);
  });

  test("throttled past the longest wait: a clear 503 error", async () => {
    const { hub } = fakeHub(async () => {
      throw throttled();
    });
    let clock = 0;
    const paced = withHubPacing(hub, {
      maxWaitMs: 10_000,
      now: () => clock,
      wait: async (ms) => {
        clock += ms;
      },
    });
    await assert.rejects(paced.ensureModule("d", "m"), {
      code: "RF_ERR_ROLLOUT_IOTHUB_THROTTLED",
      status: 503,
    });
  });

  test("at most maxInFlight operations at once", async () => {
    const { hub, stats } = fakeHub(() => new Promise((r) => setTimeout(r, 5)));
    const paced = withHubPacing(hub, { maxInFlight: 3 });
    await Promise.all(Array.from({ length: 20 }, () => paced.ensureModule("d", "m")));
    assert.equal(stats().calls, 20);
    assert.equal(stats().maxInFlight, 3);
  });
});
