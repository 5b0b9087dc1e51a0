/**
 * The relay goes away for 30 s and comes back (the emulator's port is closed: connection
 * refused). With the default backoff each listener makes at most 10 attempts a minute while it is
 * down, and is online again within 10 s of the relay's return. One 30-second test, on purpose.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { it } from "node:test";
import { HybridConnectionListener } from "../../lib/hyco/listener.ts";
import { startRelayEmulator } from "../../sim/relay-emulator/index.ts";
import { sleep, waitFor } from "../helpers/index.ts";

const OUTAGE_MS = 30_000;

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

it("reconnects after a 30 s relay outage: ≤ 10 attempts/min while down, online ≤ 10 s after return", async (t) => {
  const relay = await startRelayEmulator();
  t.after(() => relay.close());
  relay.admin.putHybridConnection("site-r");
  const rule = relay.admin.putAuthorizationRule("site-r", "listen", ["Listen"]).rule;
  const listeners = [0, 1].map(() => {
    const l = new HybridConnectionListener({
      endpoint: relay.url,
      hybridConnection: "site-r",
      keyName: "listen",
      key: rule.primaryKey,
    });
    t.after(() => l.close());
    return l.start();
  });
  await waitFor(() => listeners.every((l) => l.state.status === "online"), "listeners online");
  const attemptTimes: number[][] = listeners.map(() => []);
  for (const [i, l] of listeners.entries()) l.on("attempt", () => attemptTimes[i]!.push(Date.now()));

  const down = Date.now();
  await relay.faults.outage(OUTAGE_MS, { mode: "refuse", dropExisting: true });
  await waitFor(() => listeners.every((l) => l.state.status !== "online"), "listeners noticed");
  await sleep(OUTAGE_MS - 1_000);
  // Find the moment the port is back, to the nearest 50 ms.
  await waitFor(() => portOpen(relay.port), "relay back", { timeoutMs: 10_000, intervalMs: 50 });
  const back = Date.now();
  await waitFor(() => listeners.every((l) => l.state.status === "online"), "listeners online again", {
    timeoutMs: 15_000,
  });
  const online = Date.now();

  for (const [i, times] of attemptTimes.entries()) {
    const whileDown = times.filter((at) => at >= down && at < back).length;
    // ≤ 10 a minute over a 30 s window is ≤ 5, plus one for where the window cuts the period.
    assert.ok(whileDown <= 6, `listener ${i}: ${whileDown} attempts in ${back - down} ms down`);
    assert.ok(whileDown >= 2, `listener ${i} kept trying (${whileDown})`);
  }
  assert.ok(online - back <= 10_000, `online ${online - back} ms after the relay returned`);
});
