/**
 * Standby connections (lib/hyco/standby.ts) between the sender's pool and the relayListener module
 * as a real process, through the relay emulator over TLS: the module holds standbys past its
 * preamble timeout and serves them like any connection, expires idle ones, refuses them when
 * switched off or full, and the pool falls back to ordinary connects in every such case.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import net, { type AddressInfo } from "node:net";
import { test } from "node:test";
import type { WebSocket } from "ws";
import type { SenderOptions } from "../../lib/hyco/sender.ts";
import { StandbyPool } from "../../lib/hyco/standby-pool.ts";
import { openLogicalPort } from "../../lib/hyco/tunnel.ts";
import { waitFor } from "../helpers/index.ts";
import {
  patchDesired,
  roundTrip,
  type Site,
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
  const tunnel = await openLogicalPort(sender, "echo", { standby: pool });
  const ws: WebSocket = tunnel.ws;
  const payload = randomBytes(100_000);
  const echoed = await roundTrip(ws, tunnel.takeHeld(), payload);
  assert.ok(echoed.equals(payload), "echo through the tunnel");
  ws.close(1000);
}

const rendezvous = (site: Site) => site.relay.stats().accepts;

test("a warm pool serves connections over standbys the module holds past its preamble timeout", async (t) => {
  const { site, sender, heldByModule } = await siteWithModule(t, {
    STANDBY_MAX: "4",
    STANDBY_IDLE_MS: "60000",
  });
  const pool = new StandbyPool(sender, { size: 1 });
  t.after(() => pool.close());

  assert.equal(pool.ready, 0, "a pool is cold until its first use");
  assert.equal(await heldByModule(), 0);
  await echoThrough(sender, pool); // ordinary connect; warms the pool
  await waitFor(() => pool.ready === 1, "a standby after the first use");
  await new Promise((r) => setTimeout(r, 800)); // well past PREAMBLE_TIMEOUT_MS (300)
  assert.equal(pool.ready, 1, "the module keeps a standby beyond the preamble timeout");
  assert.equal(await heldByModule(), 1, "relay_listener_standby_connections");

  const before = rendezvous(site);
  await echoThrough(sender, pool);
  await waitFor(() => pool.ready === 1, "refilled");
  // The second connection used the standby: the only new rendezvous is the refill.
  assert.equal(rendezvous(site) - before, 1);
});

test("the module ends standbys idle for STANDBY_IDLE_MS; a warm pool replaces them", async (t) => {
  const { site, sender } = await siteWithModule(t, { STANDBY_MAX: "4", STANDBY_IDLE_MS: "1000" });
  const pool = new StandbyPool(sender, { size: 1, maxAgeMs: 60_000, failureBackoffMs: 200 });
  t.after(() => pool.close());
  await echoThrough(sender, pool);
  await waitFor(() => pool.ready === 1, "a standby");
  const before = rendezvous(site);
  await waitFor(() => rendezvous(site) > before && pool.ready === 1, "expired standby replaced", {
    timeoutMs: 10_000,
  });
  await echoThrough(sender, pool);
});

test("a module with standbys off refuses them; the pool backs off and connects as usual", async (t) => {
  const { site, sender } = await siteWithModule(t, { STANDBY_MAX: "0" });
  const pool = new StandbyPool(sender, { size: 1, refusedBackoffMs: 60_000 });
  t.after(() => pool.close());
  const before = rendezvous(site);
  await echoThrough(sender, pool);
  await waitFor(() => rendezvous(site) === before + 2, "the connection and one standby attempt");
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(pool.ready, 0, "refused standby is not kept");
  await echoThrough(sender, pool);
  await new Promise((r) => setTimeout(r, 300));
  // Only the connection itself: no new standby attempt while backing off.
  assert.equal(rendezvous(site), before + 3);
});

test("a module at STANDBY_MAX refuses more; the pool holding one keeps it", async (t) => {
  const { sender } = await siteWithModule(t, { STANDBY_MAX: "1", STANDBY_IDLE_MS: "60000" });
  const first = new StandbyPool(sender, { size: 1 });
  const second = new StandbyPool(sender, { size: 1, failureBackoffMs: 60_000 });
  t.after(() => {
    first.close();
    second.close();
  });
  await echoThrough(sender, first);
  await waitFor(() => first.ready === 1, "first pool's standby");
  await echoThrough(sender, second);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(second.ready, 0, "over the limit: refused");
  assert.equal(first.ready, 1, "the held standby is untouched");
  await echoThrough(sender, first);
});

test("a standby that closes as it is taken is replaced by an ordinary connect, invisibly", async (t) => {
  const { site, sender } = await siteWithModule(t, { STANDBY_MAX: "4", STANDBY_IDLE_MS: "60000" });
  const pool = new StandbyPool(sender, { size: 1 });
  t.after(() => pool.close());
  await echoThrough(sender, pool);
  await waitFor(() => pool.ready === 1, "a standby");
  // The race the pool cannot rule out: the listener or relay closes a standby just as it is used.
  const take = pool.take.bind(pool);
  pool.take = async () => {
    const ws = await take();
    ws?.close(1001, "going away");
    return ws;
  };
  const before = rendezvous(site);
  await echoThrough(sender, pool);
  assert.ok(rendezvous(site) > before, "the connection went through a fresh rendezvous");
});

test("streams that end cleanly reuse one relayed connection; a reset stream does not", async (t) => {
  const { site, sender } = await siteWithModule(t, { STANDBY_MAX: "4", STANDBY_IDLE_MS: "60000" });
  const pool = new StandbyPool(sender, { size: 1 });
  t.after(() => pool.close());
  // A local entry the way the gateway serves a client: logical port, then the tunnel pump.
  const entry = net.createServer({ allowHalfOpen: true }, (client) => {
    client.pause();
    client.on("error", () => {});
    openLogicalPort(sender, "echo", { standby: pool }).then(
      (tunnel) => {
        tunnel.pump(client);
        client.resume();
      },
      () => client.destroy(),
    );
  });
  entry.listen(0, "127.0.0.1");
  await once(entry, "listening");
  t.after(() => entry.close());
  const port = (entry.address() as AddressInfo).port;
  const exchange = async (payload: Buffer): Promise<Buffer> => {
    const socket = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
    const parts: Buffer[] = [];
    socket.on("data", (d: Buffer) => parts.push(d));
    socket.end(payload); // request, then FIN; the echo target answers and closes
    await once(socket, "end");
    socket.destroy();
    return Buffer.concat(parts);
  };

  await exchange(Buffer.from("warm up"));
  await waitFor(() => pool.ready === 1, "a standby");
  const before = rendezvous(site);
  for (let i = 0; i < 5; i++) {
    const payload = randomBytes(50_000 + i);
    assert.ok((await exchange(payload)).equals(payload), `stream ${i} byte-exact`);
    await waitFor(() => pool.ready === 1, `stream ${i}'s connection back in the pool`);
  }
  assert.equal(rendezvous(site), before, "five streams over the one standby, no new rendezvous");

  const reset = net.connect({ port, host: "127.0.0.1" });
  reset.on("error", () => {});
  reset.write("x");
  await once(reset, "data");
  reset.resetAndDestroy();
  await waitFor(() => rendezvous(site) > before && pool.ready === 1, "a reset stream is replaced");
  const payload = randomBytes(1000);
  assert.ok((await exchange(payload)).equals(payload), "and the replacement works");
});
