/**
 * Issue 7 fault: the relay emulator restarted mid-run (on the same port, with its state file and
 * CA, as `Fleet.startRelay` does). A transfer running at that moment ends promptly instead of
 * hanging; while the relay is down the module reports it and its reconnect rate stays bounded;
 * after the restart the listeners come back and new connections work.
 *
 * Counting the attempts: the relay process is gone while it is down, so nothing inside it can
 * count. For the downtime a plain TCP server holds the relay's port and counts (and drops) every
 * connection: each is one listen attempt of the module (no client connects meanwhile). That is
 * exact and reads nothing from the module under test.
 */
import assert from "node:assert/strict";
import { createServer, type Server } from "node:net";
import { after, before, test } from "node:test";
import type { Fleet } from "../../sim/fleet.ts";
import {
  echoExact,
  fileScope,
  keystream,
  sha256,
  siteServes,
  startE2eFleet,
  startEchoTransfer,
  waitForSiteServing,
} from "../helpers/e2e.ts";
import { sleep, waitFor } from "../helpers/index.ts";

const MiB = 1024 * 1024;
/** How long the relay stays down: long enough for several backoff steps up to the 9 s cap. */
const DOWNTIME_MS = 20_000;
/** The bound on reconnects while the relay is down: at most this many listen attempts per listener per (started) minute down. */
const MAX_ATTEMPTS_PER_LISTENER_MINUTE = 10;

const scope = fileScope(after);
let fleet: Fleet;

before(async () => {
  fleet = await startE2eFleet(scope, { sites: 1 });
  await waitForSiteServing(fleet, "plant-1");
});

async function listenersOnRelay(): Promise<number> {
  return (await fleet.relayStats()).hybridConnections["site-plant-1"]?.listeners ?? 0;
}

/** Binds `port` (just released by the relay) and counts connections, dropping each at once. */
async function holdPort(port: number): Promise<{ server: Server; count: () => number }> {
  let count = 0;
  const server = createServer((socket) => {
    count++;
    socket.destroy();
  });
  for (let attempt = 0; ; attempt++) {
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, "127.0.0.1", () => {
          server.removeListener("error", reject);
          resolve();
        });
      });
      return { server, count: () => count };
    } catch (err) {
      if (attempt >= 40) throw err;
      await sleep(50);
    }
  }
}

test("relay restarted mid-run: transfer ends promptly, bounded reconnects while down, listeners back, new connections work", async (t) => {
  const listeners = await waitFor(async () => {
    const n = await listenersOnRelay();
    return n >= 2 ? n : undefined;
  }, "the module's listeners on the relay");

  const transfer = await startEchoTransfer(fleet.sites.get("plant-1")?.publicPorts.echo ?? 0, {
    bytesPerSecond: 4 * MiB,
    chunkBytes: 64 * 1024,
  });
  await waitFor(() => transfer.received() > MiB, "the transfer to flow");

  const relayPort = Number(new URL(fleet.relay.url).port);
  await fleet.relayProcess.stop("SIGTERM");
  const holder = await holdPort(relayPort);
  const downSince = Date.now();
  try {
    // The transfer's relay legs are gone: it must end (any way but a hang), not stay open.
    let ended = false;
    void transfer.done.then(() => {
      ended = true;
    });
    await waitFor(() => ended, "the interrupted transfer to end", { timeoutMs: 20_000 });
    const r = await transfer.done;
    assert.notEqual(r.ending, "end", "an interrupted transfer does not look like a clean end");

    // The module tells IoT Hub (reported properties) that its relay is not online.
    const reported = await waitFor(
      async () => {
        const relay = (await fleet.moduleTwin("plant-1")).reported.relay as { status?: string } | undefined;
        return relay && relay.status !== "online" ? relay : undefined;
      },
      "the module to report the relay offline",
      { timeoutMs: 15_000 },
    );
    assert.match(String(reported.status), /reconnecting|connecting|offline/);

    await sleep(Math.max(0, DOWNTIME_MS - (Date.now() - downSince)));
  } finally {
    await new Promise<void>((resolve) => holder.server.close(() => resolve()));
  }
  const downMs = Date.now() - downSince;
  const attempts = holder.count();

  await fleet.startRelay();
  const back = await waitFor(
    async () => {
      const n = await listenersOnRelay();
      return n >= listeners ? n : undefined;
    },
    "every listener back on the restarted relay",
    { timeoutMs: 40_000, intervalMs: 250 },
  );
  assert.equal(back, listeners);

  t.diagnostic(
    `relay down ${downMs} ms: ${attempts} listen attempts by ${listeners} listeners; back after ${Date.now() - downSince - downMs} ms`,
  );
  const minutes = Math.ceil(downMs / 60_000);
  const perListener = attempts / listeners;
  assert.ok(
    attempts >= listeners,
    `each listener kept trying while the relay was down (${attempts} attempts)`,
  );
  assert.ok(
    perListener <= MAX_ATTEMPTS_PER_LISTENER_MINUTE * minutes,
    `${attempts} listen attempts by ${listeners} listeners in ${downMs} ms of downtime: ${perListener} per listener, more than ${MAX_ATTEMPTS_PER_LISTENER_MINUTE} per minute`,
  );
  // Coming back is one successful attempt per listener, not a burst.
  const afterRestart = (await fleet.relayStats()).hybridConnections["site-plant-1"]?.listenAttempts ?? 0;
  assert.ok(afterRestart <= 2 * listeners, `${afterRestart} listen attempts after the restart`);

  // New connections work end to end (the relay kept the hybrid connection, rules and keys).
  assert.ok(await siteServes(fleet.sites.get("plant-1")?.publicPorts.web ?? 0, "plant-1"));
  const data = keystream()(2 * MiB);
  assert.equal(
    sha256(await echoExact(fleet.sites.get("plant-1")?.publicPorts.echo ?? 0, data)),
    sha256(data),
  );
  const relay = await waitFor(async () => {
    const r = (await fleet.moduleTwin("plant-1")).reported.relay as { status?: string } | undefined;
    return r?.status === "online" ? r : undefined;
  }, "the module to report the relay online again");
  assert.equal(relay.status, "online");
});
