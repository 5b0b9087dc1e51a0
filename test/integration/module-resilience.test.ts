/**
 * Faults a site lives through, with real processes against both emulators: two module instances
 * share one hybrid connection (and one dying doesn't stop new connections), a target going down
 * is reported and recovers, an IoT Hub connection drop is survived (the patch made meanwhile
 * still arrives), and a relay outage is reported and survived.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { waitFor } from "../helpers/index.ts";
import {
  MODULE_ID,
  openPort,
  patchDesired,
  roundTrip,
  startEcho,
  startModuleProcess,
  startSite,
  waitReported,
} from "./module-harness.ts";

const SECOND = "relayListenerB";

async function echoOnce(site: Parameters<typeof openPort>[0], name = "echo"): Promise<void> {
  const { ws, early } = await openPort(site, name);
  const msg = Buffer.from(`hello ${Math.random()}`);
  assert.ok((await roundTrip(ws, early, msg)).equals(msg));
  ws.close();
}

test("two instances, target down, IoT Hub drop, relay outage", { timeout: 120_000 }, async (t) => {
  const site = await startSite(t);
  await site.svc.registry.addModule({ deviceId: site.deviceId, moduleId: SECOND });
  const echo = await startEcho(t);
  const desired = { relay: site.relaySection(), mappings: { echo: { target: `127.0.0.1:${echo.port}` } } };
  await patchDesired(site, desired);
  await patchDesired(site, desired, SECOND);
  const a = await startModuleProcess(t, site);
  const b = await startModuleProcess(t, site, {}, SECOND);
  for (const id of [MODULE_ID, SECOND]) {
    await waitReported(
      site,
      (r) => r.relay?.status === "online" && r.mappings?.echo?.state === "active",
      `${id} online`,
      20_000,
      id,
    );
  }

  // Two instances share the hybrid connection: the relay spreads connections across both.
  for (let i = 0; i < 20; i++) await echoOnce(site);
  const totals = await waitFor(async () => {
    const t2 = await Promise.all(
      [MODULE_ID, SECOND].map(
        async (id) =>
          (await waitReported(site, () => true, id, 5_000, id)).mappings?.echo?.totalConnections ?? 0,
      ),
    );
    return t2[0]! + t2[1]! === 20 ? t2 : undefined;
  }, "20 connections reported across both instances");
  assert.ok(totals[0]! > 0 && totals[1]! > 0, `one instance got nothing: ${JSON.stringify(totals)}`);

  // One instance dies: new connections keep working through the other.
  await b.stop("SIGKILL");
  for (let i = 0; i < 5; i++) await echoOnce(site);

  // The target goes down: refused connections are reported; it comes back and the mapping recovers.
  const port = echo.port;
  for (const s of echo.sockets) s.destroy();
  await new Promise<void>((r) => echo.server.close(() => r()));
  await assert.rejects(openPort(site, "echo"), /closed 1011/);
  const down = await waitReported(site, (r) => r.mappings?.echo?.state === "error", "target down reported");
  assert.match(down.mappings?.echo?.lastError ?? "", /ECONNREFUSED|refused/);
  await startEcho(t, port);
  await echoOnce(site);
  await waitReported(site, (r) => r.mappings?.echo?.state === "active", "target recovered");

  // IoT Hub drops the module's connection; a patch made right then still arrives.
  assert.ok(site.hub.dropConnection(site.deviceId, MODULE_ID));
  const v = await patchDesired(site, { mappings: { echo2: { target: `127.0.0.1:${port}` } } });
  await waitReported(
    site,
    (r) => r.appliedDesiredVersion === v && r.mappings?.echo2?.state === "active",
    "patch after drop",
    30_000,
  );
  await echoOnce(site, "echo2");

  // Relay outage: reported as reconnecting with an error, then online again and serving.
  await site.relay.faults.outage(1_500, { mode: "refuse", dropExisting: true });
  const out = await waitReported(site, (r) => r.relay?.status !== "online", "relay outage reported");
  assert.ok(out.relay?.listeners?.some((l) => l.status === "reconnecting"));
  await waitReported(site, (r) => r.relay?.status === "online", "relay back online", 20_000);
  await waitFor(
    async () => {
      await echoOnce(site);
      return true;
    },
    "connection after the relay outage",
    { timeoutMs: 15_000, intervalMs: 300 },
  );
  assert.equal(await a.stop("SIGTERM", 15_000), 0);
});
