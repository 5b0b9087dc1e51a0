/**
 * A fleet of modules back from a hub outage stays within the hub's new-connection quota (issue
 * 18, ADR 0027): 20 simulated modules (the device SDK wired as relayListener wires it) against
 * the IoT Hub emulator with a connection quota of 10 a second; the emulator is stopped and
 * started again, and every module reconnects on its fleet-sized slot (20 modules at a budget of
 * 4 a second: a 5 s period). No second sees more new connections than the quota, the hub throttles
 * none, and all are back within the period (+10 %) of the hub's return. Then the hub drops every
 * connection and stays up, so the SDK's immediate reconnect would meet a live hub all at once:
 * the module's connect gate (hub-transport.ts) holds those attempts to the slots too.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { createLogger } from "../../lib/log.ts";
import { type IotHubEmulator, startIotHubEmulator } from "../../sim/iothub-emulator/index.ts";
import type { QuotaClass } from "../../sim/iothub-emulator/quotas.ts";
import { SimulatedHubModule } from "../../sim/load-generator/hub-module.ts";
import { waitFor } from "../helpers/index.ts";

const FLEET = 20;
const QUOTA = 10;
const BUDGET = 4;
const PERIOD_MS = (FLEET / BUDGET) * 1_000;

test("a fleet reconnecting after a hub restart never exceeds the new-connection quota and is back within its period", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "hub-reconnect-"));
  const stateFile = join(dir, "state.json");
  const accepted: number[] = [];
  let throttled = 0;
  const onQuotaDecision = (cls: QuotaClass, allowed: boolean, at: number) => {
    if (cls !== "connect") return;
    if (allowed) accepted.push(at);
    else throttled++;
  };
  const options = {
    dir,
    stateFile,
    workloadPort: false as const,
    quotaOverrides: { connect: QUOTA },
    onQuotaDecision,
  };
  let emu: IotHubEmulator = await startIotHubEmulator(options);
  const modules: SimulatedHubModule[] = [];
  t.after(async () => {
    await Promise.all(modules.map((m) => m.stop()));
    await emu.close();
    rmSync(dir, { recursive: true, force: true });
  });
  for (let i = 0; i < FLEET; i++) {
    emu.hub.createModule(emu.hub.createDevice(`site-dev-${i}`, { iotEdge: true }), "relayListener");
  }
  const logger = createLogger("test", { level: "silent" });
  for (let i = 0; i < FLEET; i++)
    modules.push(
      new SimulatedHubModule({
        connectionString: emu.connectionString(`site-dev-${i}`, "relayListener"),
        ca: emu.caCert,
        reconnect: { fleetSize: FLEET, connectsPerSecond: BUDGET, minPeriodMs: 500 },
        logger,
      }),
    );
  // Started two at a time, within the quota.
  for (let i = 0; i < FLEET; i += 2) await Promise.all(modules.slice(i, i + 2).map((m) => m.start()));
  assert.equal(emu.hub.listDevices().length, FLEET);

  const { mqttPort, httpsPort } = emu;
  await emu.close();
  accepted.length = 0;
  throttled = 0;
  await new Promise((r) => setTimeout(r, 1_000));
  emu = await startIotHubEmulator({ ...options, mqttPort, httpsPort });
  const back = Date.now();
  const connected = () =>
    Array.from(
      { length: FLEET },
      (_, i) => emu.hub.module(`site-dev-${i}`, "relayListener").connectionState,
    ).filter((s) => s === "Connected").length;
  await waitFor(() => connected() === FLEET, "every module reconnected", { timeoutMs: PERIOD_MS * 3 });
  const last = Math.max(...accepted);
  const perSecond = new Map<number, number>();
  for (const at of accepted) {
    const second = Math.floor((at - back) / 1_000);
    perSecond.set(second, (perSecond.get(second) ?? 0) + 1);
  }
  const busiest = Math.max(...perSecond.values());
  assert.equal(throttled, 0, "the hub refused no connection");
  assert.ok(busiest <= QUOTA, `at most ${QUOTA} new connections in any second (busiest ${busiest})`);
  assert.ok(accepted.length >= FLEET, `every module connected again (${accepted.length})`);
  assert.ok(
    last - back <= PERIOD_MS * 1.1,
    `all back within the fleet's period + 10 % (${last - back} ms, period ${PERIOD_MS} ms)`,
  );
  assert.ok(
    perSecond.size >= 3,
    `reconnects spread over the period, not in a burst (${perSecond.size} seconds)`,
  );

  // The hub drops everyone and is back at once (a failover): no outage for the SDK's immediate
  // attempts to fail against.
  accepted.length = 0;
  throttled = 0;
  const dropped = Date.now();
  for (let i = 0; i < FLEET; i++) emu.dropConnection(`site-dev-${i}`, "relayListener");
  await waitFor(
    () => accepted.length >= FLEET && connected() === FLEET,
    "every module reconnected after the drop",
    {
      timeoutMs: PERIOD_MS * 3,
    },
  );
  const dropSeconds = new Map<number, number>();
  for (const at of accepted) {
    const second = Math.floor((at - dropped) / 1_000);
    dropSeconds.set(second, (dropSeconds.get(second) ?? 0) + 1);
  }
  assert.equal(throttled, 0, "after the drop the hub refused no connection");
  assert.ok(
    Math.max(...dropSeconds.values()) <= QUOTA,
    `after the drop at most ${QUOTA} in any second (${[...dropSeconds].join(" ")})`,
  );
  assert.ok(
    (dropSeconds.get(0) ?? 0) <= FLEET / 2,
    `the SDK's immediate attempts were held to the slots (${dropSeconds.get(0) ?? 0} in the first second)`,
  );
  assert.ok(
    Math.max(...accepted) - dropped <= PERIOD_MS * 1.1 + 1_000,
    `all back within the period (+10 %) and the gap after the drop (${Math.max(...accepted) - dropped} ms)`,
  );
});
