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

describe("withHubPacing: a rate per quota class", () => {
  /** A fake hub whose twin reads and bulk creates record when they ran. */
  function timedHub(behaviour: (op: string) => void = () => {}) {
    const calls: Array<{ op: string; at: number; n: number }> = [];
    const hub = {
      async getModuleTwin() {
        behaviour("getModuleTwin");
        calls.push({ op: "getModuleTwin", at: Date.now(), n: 1 });
        return undefined;
      },
      async createEdgeDevices(ids: string[]) {
        behaviour("createEdgeDevices");
        calls.push({ op: "createEdgeDevices", at: Date.now(), n: ids.length });
        return { created: ids, existing: [], failed: [] };
      },
      async ensureModule() {
        behaviour("ensureModule");
        calls.push({ op: "ensureModule", at: Date.now(), n: 1 });
      },
    } as unknown as FleetHub;
    return { hub, calls };
  }

  test("a burst within the bucket goes at once, the rest at the class's rate", async () => {
    const { hub, calls } = timedHub();
    // 100 twin reads a second: a bucket of 90 (a tenth held back), then one every 10 ms.
    const paced = withHubPacing(hub, { rates: { twinRead: 100 } });
    const started = Date.now();
    await Promise.all(Array.from({ length: 120 }, () => paced.getModuleTwin("d", "m")));
    const elapsed = Date.now() - started;
    assert.equal(calls.length, 120);
    assert.ok(elapsed >= 250, `30 reads past the burst at 100/s take about 300 ms, took ${elapsed}`);
    const burst = (calls[89]?.at ?? 0) - started;
    const last = (calls[119]?.at ?? 0) - started;
    assert.ok(last - burst >= 200, `the burst took ${burst} ms, the 30 after it ${last - burst} ms`);
  });

  test("the time scale refills faster with the same bucket", async () => {
    const { hub, calls } = timedHub();
    // Registry: 100 a minute, a bucket of 90; ×60 refills 100 a second.
    const paced = withHubPacing(hub, { rates: { registry: 100 / 60 }, timeScale: 60 });
    const started = Date.now();
    await Promise.all(Array.from({ length: 110 }, () => paced.ensureModule("d", "m", { fresh: true })));
    const elapsed = Date.now() - started;
    assert.equal(calls.length, 110);
    assert.ok(elapsed >= 150 && elapsed < 2_000, `20 past the burst at 100/s: ${elapsed} ms`);
  });

  test("a bulk call is not overtaken by the single operations queued after it", async () => {
    const { hub, calls } = timedHub();
    const paced = withHubPacing(hub, { rates: { registry: 100 / 60 }, timeScale: 60 });
    const ids = Array.from({ length: 50 }, (_, i) => `d${i}`);
    await Promise.all([
      ...Array.from({ length: 80 }, () => paced.ensureModule("x", "m", { fresh: true })),
      paced.createEdgeDevices(ids),
      ...Array.from({ length: 5 }, () => paced.ensureModule("y", "m", { fresh: true })),
    ]);
    const order = calls.map((c) => c.op);
    assert.equal(order.indexOf("createEdgeDevices"), 80, "the bulk call ran in its turn");
  });

  test("a 429 empties the class's bucket: the class goes on at the refill rate", async () => {
    let refuse = 1;
    const { hub, calls } = timedHub((op) => {
      if (op === "getModuleTwin" && refuse-- > 0) throw throttled();
    });
    const waits: number[] = [];
    const paced = withHubPacing(hub, {
      rates: { twinRead: 100 },
      backoff: { initialMs: 20, maxMs: 20, jitter: 0 },
      onThrottled: (_op, ms) => void waits.push(ms),
    });
    await paced.getModuleTwin("d", "m"); // refused once, retried
    const started = Date.now();
    await Promise.all(Array.from({ length: 20 }, () => paced.getModuleTwin("d", "m")));
    const elapsed = Date.now() - started;
    assert.equal(waits.length, 1);
    assert.equal(calls.length, 21);
    // Without the 429 the bucket would have let all 20 through at once.
    assert.ok(elapsed >= 120, `20 reads from an emptied bucket at 100/s: ${elapsed} ms`);
  });
});
