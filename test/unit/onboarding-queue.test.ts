import assert from "node:assert/strict";
import { test } from "node:test";
import type { FleetHub } from "../../cloud/functions/src/rollout/hub.ts";
import {
  createOnboardingQueue,
  type OnboardingRollout,
} from "../../cloud/functions/src/rollout/onboarding-queue.ts";

/** A rollout whose sites take `ms` each and whose bulk calls are recorded (the queue's logic alone). */
function fakeRollout(
  ms: number,
  fail: (siteId: string, attempt: number) => Error | undefined = () => undefined,
) {
  const events: string[] = [];
  const attempts = new Map<string, number>();
  let running = 0;
  let maxRunning = 0;
  const hub = {
    async createEdgeDevices(ids: string[]) {
      events.push(`bulk ${ids.join(",")}`);
      await new Promise((r) => setTimeout(r, ms));
      return { created: ids, existing: [], failed: [] };
    },
    async deleteDevice(id: string) {
      events.push(`delete ${id}`);
    },
  } as unknown as FleetHub;
  const rollout: OnboardingRollout = {
    deps: { hub },
    specFromProfile: () => ({}),
    async createSite(body) {
      const { siteId } = body as { siteId: string };
      const n = (attempts.get(siteId) ?? 0) + 1;
      attempts.set(siteId, n);
      running++;
      maxRunning = Math.max(maxRunning, running);
      events.push(`start ${siteId}`);
      try {
        await new Promise((r) => setTimeout(r, ms));
        const err = fail(siteId, n);
        if (err) throw err;
        events.push(`end ${siteId}`);
        return { created: true, site: { publicPorts: [] } as never };
      } finally {
        running--;
      }
    },
  };
  return { rollout, events, stats: () => ({ maxRunning }) };
}

test("the next batch's bulk call runs while the sites of the previous one are onboarded", async () => {
  const { rollout, events, stats } = fakeRollout(30);
  const queue = createOnboardingQueue(rollout, { batchSize: 3, concurrency: 3 });
  const job = queue.submit({ sites: Array.from({ length: 9 }, (_, i) => ({ siteId: `s-${i}` })) });
  const done = await queue.settled(job.id);
  assert.deepEqual(done?.counts, { queued: 0, running: 0, succeeded: 9, failed: 0 });
  const secondBulk = events.indexOf("bulk s-3,s-4,s-5");
  const firstBatchEnds = Math.max(...["s-0", "s-1", "s-2"].map((s) => events.indexOf(`end ${s}`)));
  assert.ok(secondBulk >= 0 && secondBulk < firstBatchEnds, events.join("\n"));
  assert.equal(stats().maxRunning, 3, "at most `concurrency` sites at once");
});

test("passing failures are retried, refusals fail alone and their bulk-created devices go", async () => {
  const passing = Object.assign(new Error("hub busy"), { status: 503, code: "RF_ERR_ROLLOUT_IOTHUB" });
  const refused = Object.assign(new Error("port taken"), { status: 409, code: "RF_ERR_LEDGER_PORT_TAKEN" });
  const { rollout, events } = fakeRollout(5, (siteId, attempt) =>
    siteId === "s-1" && attempt === 1 ? passing : siteId === "s-2" ? refused : undefined,
  );
  const queue = createOnboardingQueue(rollout, { batchSize: 2, concurrency: 2, retryDelayMs: 20 });
  const job = queue.submit({ sites: Array.from({ length: 5 }, (_, i) => ({ siteId: `s-${i}` })) });
  const progress = queue.get(job.id);
  assert.equal(progress?.counts.queued, 5);
  const done = await queue.settled(job.id);
  assert.deepEqual(done?.counts, { queued: 0, running: 0, succeeded: 4, failed: 1 });
  const s1 = done?.sites.find((s) => s.siteId === "s-1");
  assert.equal(s1?.state, "succeeded");
  assert.equal(s1?.attempts, 2);
  assert.equal(s1?.reason, undefined);
  const s2 = done?.sites.find((s) => s.siteId === "s-2");
  assert.equal(s2?.state, "failed");
  assert.equal(s2?.code, "RF_ERR_LEDGER_PORT_TAKEN");
  assert.ok(events.includes("delete s-2"), "the refused site's device is deleted");
  assert.equal(
    events.filter((e) => e.startsWith("bulk") && e.includes("s-1")).length,
    1,
    "a retry is not bulk-created again",
  );
});
