/** The reporter coalesces bursts into one patch per interval, sends only differences, and retries. */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { createLogger } from "../../lib/log.ts";
import type { ReportedPatch, ReportedProperties } from "../../lib/twin/index.ts";
import { Reporter, reportedDiff } from "../../modules/relayListener/src/reporter.ts";
import { sleep, waitFor } from "../helpers/index.ts";

const logger = createLogger("test", {
  destination: new Writable({ write: (_c, _e, cb) => cb() }),
  level: "silent",
});

function doc(bytes: number, mappings = ["a"]): ReportedProperties {
  return {
    schemaVersion: "1.0",
    moduleVersion: "1",
    appliedDesiredVersion: 3,
    status: "running",
    startedAt: "t0",
    updatedAt: new Date().toISOString(),
    relay: {
      status: "online",
      endpoint: "e",
      hybridConnection: "h",
      keyName: "k",
      keyFingerprint: "f",
      listeners: [],
    },
    mappings: Object.fromEntries(
      mappings.map((m) => [
        m,
        {
          state: "active",
          target: "h:1",
          activeConnections: 0,
          totalConnections: 0,
          rejectedConnections: 0,
          bytesIn: bytes,
          bytesOut: 0,
          lastError: null,
        },
      ]),
    ),
    errors: [],
  };
}

test("reportedDiff sends only what changed, removed mappings as null", () => {
  const patch = reportedDiff(doc(1, ["a", "b"]), doc(2, ["a"]));
  assert.deepEqual(Object.keys(patch).sort(), ["mappings", "updatedAt"]);
  assert.equal(patch.mappings?.b, null);
  assert.equal(patch.mappings?.a?.bytesIn, 2);
});

test("a burst of 200 changes becomes at most a few patches; failures are retried", async () => {
  let bytes = 0;
  const patches: ReportedPatch[] = [];
  let failNext = true;
  const reporter = new Reporter({ intervalMs: 150, build: () => doc(bytes), logger });
  reporter.attach(async (p) => {
    if (failNext) {
      failNext = false;
      throw new Error("hub busy");
    }
    patches.push(p);
  });
  for (let i = 0; i < 200; i++) {
    bytes = i;
    reporter.markChanged();
    await sleep(1);
  }
  await waitFor(() => patches.some((p) => p.mappings?.a?.bytesIn === 199), "final counters reported");
  assert.ok(patches.length <= 8, `too many patches: ${patches.length}`);
  assert.ok(patches[0]?.relay, "the first successful patch is the full document");
  reporter.stop();
});
