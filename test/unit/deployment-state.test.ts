/** `relay-fleet status`'s deployment column: each device's state from its `$edgeAgent` twin (pure). */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { ModuleTwinView } from "../../cloud/functions/src/rollout/hub.ts";
import { type SiteStatus, withDeploymentState } from "../../cloud/functions/src/rollout/status.ts";

const site = (deviceId: string): SiteStatus => ({
  siteId: deviceId,
  deviceId,
  listenerOnline: true,
  listenerStatus: "online",
  mappings: 1,
  activeConnections: 0,
  desiredVersion: 2,
  appliedVersion: 2,
  drift: [],
});

const agent = (deviceId: string, reported: Record<string, unknown>): ModuleTwinView => ({
  deviceId,
  moduleId: "$edgeAgent",
  desired: {},
  reported,
  desiredVersion: 1,
});

const ok = { code: 200, description: "" };
const image = "reg/relaylistener:0.1.0-amd64";

test("each device's deployment state: running, restarting, not deployed, refused, never reported", () => {
  const out = withDeploymentState(
    ["a", "b", "c", "d", "e"].map(site),
    [
      agent("a", {
        lastDesiredVersion: 3,
        lastDesiredStatus: ok,
        modules: { relayListener: { runtimeStatus: "running", settings: { image } } },
      }),
      agent("b", {
        lastDesiredVersion: 3,
        lastDesiredStatus: ok,
        modules: {
          relayListener: { runtimeStatus: "backoff", statusDescription: "exited (1)", settings: { image } },
        },
      }),
      agent("c", { lastDesiredVersion: 4, lastDesiredStatus: ok, modules: {} }),
      agent("d", {
        lastDesiredVersion: 5,
        lastDesiredStatus: { code: 400, description: "modules.x: image missing" },
        modules: { relayListener: { runtimeStatus: "running", settings: { image } } },
      }),
      // e: an edge device whose runtime never reported.
      agent("e", {}),
    ],
    "relayListener",
  );
  assert.deepEqual(
    out.map((s) => [s.deviceId, s.deployment, s.image, s.drift]),
    [
      ["a", "running", image, []],
      ["b", "backoff", image, ["relayListener backoff on the device (exited (1))"]],
      ["c", "not deployed", undefined, ["relayListener is not in the device's deployment"]],
      ["d", "running", image, ["edge agent refused its deployment (400): modules.x: image missing"]],
      ["e", "no edge agent report", undefined, []],
    ],
  );
});
