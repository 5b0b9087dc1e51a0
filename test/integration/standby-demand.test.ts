/**
 * A standby pool that follows demand (lib/hyco/standby.ts, ADR 0016), against the relayListener
 * module as a real process through the relay emulator over TLS: it grows to its ceiling after a
 * burst and serves the next burst from standbys only. Its own file: it is the slowest standby
 * case. How demand is counted and decays: test/unit/standby-demand.test.ts.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import type { WebSocket } from "ws";
import type { SenderOptions } from "../../lib/hyco/sender.ts";
import { StandbyPool } from "../../lib/hyco/standby.ts";
import { openLogicalPort, takeBufferedMessages } from "../../lib/hyco/tunnel.ts";
import { waitFor } from "../helpers/index.ts";
import {
  patchDesired,
  roundTrip,
  startEcho,
  startModuleProcess,
  startSite,
  waitReported,
} from "./module-harness.ts";

async function siteWithModule(t: test.TestContext, env: Record<string, string>) {
  const site = await startSite(t);
  const echo = await startEcho(t);
  const mod = await startModuleProcess(t, site, { PREAMBLE_TIMEOUT_MS: "300", ...env });
  const v = await patchDesired(site, {
    relay: site.relaySection(),
    mappings: { echo: { target: `127.0.0.1:${echo.port}` } },
  });
  await waitReported(site, (r) => r.appliedDesiredVersion === v && r.relay?.status === "online", "applied");
  const sender: SenderOptions = {
    endpoint: site.relay.endpoint,
    hybridConnection: site.hybridConnection,
    keyName: "send",
    key: site.sendKey,
    ca: site.relay.ca,
  };
  const heldByModule = async () => {
    const text = await (await fetch(`http://127.0.0.1:${mod.metricsPort}/metrics`)).text();
    const line = text.split("\n").find((l) => l.startsWith("relay_listener_standby_connections "));
    return Number(line?.split(" ")[1]);
  };
  return { site, sender, heldByModule };
}

/** One logical connection to `echo` through `pool`; asserts the bytes come back intact. */
async function echoThrough(sender: SenderOptions, pool: StandbyPool): Promise<void> {
  const ws: WebSocket = await openLogicalPort(sender, "echo", { standby: pool });
  const payload = randomBytes(100_000);
  const echoed = await roundTrip(ws, takeBufferedMessages(ws), payload);
  assert.ok(echoed.equals(payload), "echo through the tunnel");
  ws.close(1000);
}

test("a pool follows demand: a burst of N finds N standbys next time, within maxSize", async (t) => {
  const { sender, heldByModule } = await siteWithModule(t, { STANDBY_MAX: "8", STANDBY_IDLE_MS: "60000" });
  let hits = 0;
  let takes = 0;
  const pool = new StandbyPool(sender, {
    size: 1,
    maxSize: 4,
    // Long enough that a loaded CI machine finishes both bursts inside one window (the shrink is
    // proven in test/unit/standby-demand.test.ts).
    demandWindowMs: 60_000,
    onTake: (hit) => {
      takes++;
      if (hit) hits++;
    },
  });
  t.after(() => pool.close());

  // Six at once: the pool grows to its ceiling of four, not to six.
  await Promise.all(Array.from({ length: 6 }, () => echoThrough(sender, pool)));
  await waitFor(() => pool.ready === 4, "the pool grew to maxSize after the burst", { timeoutMs: 60_000 });
  assert.equal(await heldByModule(), 4, "the module holds what the pool keeps");
  assert.equal(pool.target(), 4);

  // The next burst of four is served by standbys only.
  hits = 0;
  takes = 0;
  await Promise.all(Array.from({ length: 4 }, () => echoThrough(sender, pool)));
  assert.equal(takes, 4);
  assert.equal(hits, 4, "every connection of the second burst took a standby");
});
