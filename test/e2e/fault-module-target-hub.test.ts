/**
 * Issue 7 faults on the site side, every part a real process: the relayListener module killed
 * (SIGKILL) and restarted (its device's edge agent runs it by the deployment, and status shows
 * that); the IoT Hub emulator restarted (the module resyncs its twin: a desired
 * change made after the restart reaches it); the on-prem target down (the client is refused
 * cleanly and promptly, and the module reports it in its reported properties).
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { Fleet, SiteView } from "../../sim/fleet.ts";
import {
  bannerService,
  connectTcp,
  echoExact,
  fileScope,
  keystream,
  sha256,
  siteServes,
  startE2eFleet,
  waitForSiteServing,
} from "../helpers/e2e.ts";
import { waitFor } from "../helpers/index.ts";

const scope = fileScope(after);
let fleet: Fleet;

before(async () => {
  fleet = await startE2eFleet(scope, { sites: 1 });
  await waitForSiteServing(fleet, "plant-1");
});

function port(mapping: string): number {
  const p = fleet.sites.get("plant-1")?.publicPorts[mapping];
  assert.ok(p, `plant-1 has a public port for ${mapping}`);
  return p;
}

async function listenersOnRelay(): Promise<number> {
  return (await fleet.relayStats()).hybridConnections["site-plant-1"]?.listeners ?? 0;
}

/**
 * Connects through the gateway, sends a few bytes and waits for the connection to be closed on
 * us: resolves with what came back and how long the refusal took.
 */
async function refusal(publicPort: number): Promise<{ bytes: number; ms: number; how: string }> {
  const started = Date.now();
  const socket = await connectTcp(publicPort);
  let bytes = 0;
  socket.on("data", (c: Buffer) => {
    bytes += c.length;
  });
  socket.write("hello?\n");
  const how = await new Promise<string>((resolve) => {
    const timer = setTimeout(() => resolve("still open after 20 s"), 20_000);
    socket.once("end", () => resolve("end"));
    socket.once("error", (err) => resolve(`error ${(err as NodeJS.ErrnoException).code ?? err.message}`));
    socket.once("close", () => {
      clearTimeout(timer);
      resolve("close");
    });
  });
  socket.destroy();
  return { bytes, ms: Date.now() - started, how };
}

test("module killed (SIGKILL): clients are refused cleanly; restarted, it serves again", async () => {
  const listeners = await waitFor(async () => {
    const n = await listenersOnRelay();
    return n >= 1 ? n : undefined;
  }, "listeners on the relay");
  const mod = fleet.sites.get("plant-1")?.modules[0];
  assert.ok(mod);
  mod.process.child.kill("SIGKILL");
  assert.equal(await mod.process.exited, "SIGKILL");
  await waitFor(
    async () => (await listenersOnRelay()) === 0,
    "the relay to drop the dead module's listeners",
  );

  const r = await refusal(port("echo"));
  assert.equal(r.bytes, 0, "nothing answered while no module listens");
  assert.notEqual(r.how, "still open after 20 s", "the client is not left hanging");

  await fleet.startModule("plant-1", 0);
  await waitFor(() => siteServes(port("web"), "plant-1"), "the restarted module to serve", {
    timeoutMs: 30_000,
  });
  assert.equal(await listenersOnRelay(), listeners);
  const data = keystream()(1024 * 1024);
  assert.equal(sha256(await echoExact(port("echo"), data)), sha256(data));
});

/** Adds a mapping to `svc` on `siteId` and waits until a connection through it reaches `svc`. */
async function mappingCarries(
  siteId: string,
  name: string,
  svc: { port: number; banner: string },
  timeoutMs: number,
): Promise<void> {
  const view = await fleet.api<SiteView>("PUT", `/api/sites/${siteId}/mappings/${name}`, {
    target: `127.0.0.1:${svc.port}`,
  });
  const publicPort = view.mappings[name]?.publicPort;
  assert.ok(publicPort);
  await fleet.reloadGateways();
  const payload = keystream()(100_000);
  const expected = Buffer.concat([Buffer.from(svc.banner), payload]);
  const got = await waitFor(
    () => echoExact(publicPort, payload).then((b) => (b.length >= expected.length ? b : undefined)),
    `a connection through ${siteId}/${name}, added after the hub restart`,
    { timeoutMs, intervalMs: 250 },
  );
  assert.equal(sha256(got.subarray(0, expected.length)), sha256(expected));
}

let hubRestarted = false;

test("the module runs because its device's deployment says so: status shows the edge agent's report", async () => {
  type Row = { siteId: string; deployment?: string; image?: string; drift: string[] };
  const row = await waitFor(
    async () => {
      const { sites } = await fleet.api<{ sites: Row[] }>("GET", "/api/status");
      const r = sites.find((s) => s.siteId === "plant-1");
      return r?.deployment === "running" ? r : undefined;
    },
    "status to show plant-1's module running by its deployment",
    { timeoutMs: 30_000 },
  );
  assert.match(row.image ?? "", /\/relaylistener:0\.1\.0/);
  assert.deepEqual(
    row.drift.filter((d) => /deployment|on the device/.test(d)),
    [],
  );
});

test("IoT Hub emulator restarted: the module resyncs its twin and applies a desired change made afterwards", async (t) => {
  // This site's module also re-reads its whole twin every 2 s (TWIN_RESYNC_MS), the module's own
  // safety net for a missed patch; the next test proves delivery over MQTT with the default resync.
  await fleet.addSite("plant-2", {}, {}, { TWIN_RESYNC_MS: "2000" });
  await waitFor(
    () => siteServes(fleet.sites.get("plant-2")?.publicPorts.web ?? 0, "plant-2"),
    "plant-2 serves",
    {
      timeoutMs: 30_000,
    },
  );
  const svc = await bannerService(t);
  await fleet.hubProcess.stop("SIGTERM");
  await fleet.startHub();
  hubRestarted = true;

  // Made after the restart: only a module that reconnected to the hub gets it.
  await mappingCarries("plant-2", "after-hub", svc, 30_000);

  // Its reported properties flow again: it reports the latest desired version applied.
  const twin = await waitFor(
    async () => {
      const tw = await fleet.moduleTwin("plant-2");
      const want = tw.desired.$version;
      return typeof want === "number" && tw.reported.appliedDesiredVersion === want ? tw : undefined;
    },
    "the module to report the desired version applied",
    { timeoutMs: 30_000 },
  );
  const mappings = twin.reported.mappings as Record<string, { state?: string }>;
  assert.equal(mappings["after-hub"]?.state, "active");
});

// The device SDK never re-subscribes the desired PATCH topic after a reconnect (it relies on the
// clean=false session), so this only passes because the hub keeps sessions across its restart.
test("IoT Hub emulator restarted: a desired patch reaches a module with the default resync (15 min) over MQTT", async (t) => {
  assert.ok(hubRestarted, "runs after the hub restart above");
  const svc = await bannerService(t);
  await mappingCarries("plant-1", "after-hub-mqtt", svc, 10_000);
});

test("target down: the client is refused cleanly and promptly, and the module reports it", async (t) => {
  await fleet.sites.get("plant-1")?.services?.close();
  const r = await refusal(port("echo"));
  t.diagnostic(`target down: client closed (${r.how}) after ${r.ms} ms`);
  assert.equal(r.bytes, 0, "no byte from a target that is down");
  assert.notEqual(r.how, "still open after 20 s");
  // Prompt: a refused connect, not a connect timeout (5 s) and certainly no hang; generous for CI.
  assert.ok(r.ms < 10_000, `refusal took ${r.ms} ms`);

  const echo = await waitFor(
    async () => {
      const m = ((await fleet.moduleTwin("plant-1")).reported.mappings ?? {}) as Record<
        string,
        { state?: string; lastError?: string | null }
      >;
      return m.echo?.state === "error" ? m.echo : undefined;
    },
    "the module to report the echo mapping's target failure",
    { timeoutMs: 20_000 },
  );
  assert.match(echo.lastError ?? "", /ECONNREFUSED|refused/i);
});
