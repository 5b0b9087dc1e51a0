/**
 * Several gateways and unhappy sites: two instances serve the same ledger routes, a site without
 * a listener is refused at once and then backed off by the circuit breaker (`gateway_open_circuits`
 * shows it), a site that accepts but never answers the preamble is cut at the connect deadline,
 * and SIGTERM drains a live tunnel before exiting 0. The site is incidental here: the light site
 * (sim/light-site.ts through gateway-site.ts), not the module.
 */
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { test } from "node:test";
import type { WebSocket } from "ws";
import { HybridConnectionListener } from "../../lib/hyco/listener.ts";
import { waitFor } from "../helpers/index.ts";
import {
  closedBy,
  echoServer,
  freePort,
  randomBytes,
  roundTrip,
  sha,
  startGateway,
  startHarness,
  startHarnessSite,
} from "./gateway-harness.ts";

function dial(t: { after(fn: () => unknown): void }, port: number, host = "127.0.0.1"): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, host, () => resolve(s));
    s.once("error", reject);
    t.after(() => s.destroy());
  });
}

test("two gateway instances serve the same routes; no-listener sites back off; SIGTERM drains", {
  timeout: 60_000,
}, async (t) => {
  const h = await startHarness(t);
  const echo = await echoServer(t);
  await startHarnessSite(t, h, { echo: echo.port });
  // A second site whose hybrid connection exists but has no listener.
  h.relay.admin.putHybridConnection("site-dark");
  const darkSend = h.relay.admin.putAuthorizationRule("site-dark", "send", ["Send"]).rule;
  await h.ledger.putSite({
    siteId: "dark",
    hybridConnection: "site-dark",
    relayEndpoint: h.relay.url,
    sendKeyName: "send",
    sendKey: darkSend.primaryKey,
    deviceId: "dark",
    createdAt: new Date().toISOString(),
  });
  const port = await freePort();
  const darkPort = await freePort();
  await h.ledger.allocate({ siteId: h.siteId, portName: "echo", endpoint: { kind: "tcp", port } });
  await h.ledger.allocate({ siteId: "dark", portName: "rdp", endpoint: { kind: "tcp", port: darkPort } });

  // Two instances on two loopback addresses stand in for two VMs behind a load balancer.
  const env = { GATEWAY_BREAKER_THRESHOLD: "2" };
  const a = await startGateway(t, h, { ...env, GATEWAY_BIND_HOST: "127.0.0.1" });
  const b = await startGateway(t, h, { ...env, GATEWAY_BIND_HOST: "127.0.0.2" });
  for (const host of ["127.0.0.1", "127.0.0.2"]) {
    const payload = randomBytes(512 * 1024);
    const back = await roundTrip(await dial(t, port, host), payload);
    assert.equal(sha(back), sha(payload), `byte-exact through ${host}`);
  }
  assert.equal(await a.metric("gateway_connections_total", { route: String(port) }), 1);
  assert.equal(await b.metric("gateway_connections_total", { route: String(port) }), 1);

  // No listener: closed at once, counted; after the threshold the breaker refuses without the relay.
  for (let i = 0; i < 4; i++) await closedBy(await dial(t, darkPort), 5_000);
  assert.equal(
    await a.metric("gateway_connections_refused_total", { route: String(darkPort), reason: "no_listener" }),
    2,
  );
  assert.equal(
    await a.metric("gateway_connections_refused_total", { route: String(darkPort), reason: "circuit_open" }),
    2,
  );
  assert.equal(await a.metric("gateway_open_circuits", {}), 1, "the dark site's circuit is open");
  assert.equal(await b.metric("gateway_open_circuits", {}), 0, "breakers are per instance");

  // SIGTERM with a live tunnel: readyz goes 503 at once, the tunnel finishes, exit code 0.
  const live = await dial(t, port, "127.0.0.2");
  const got: Buffer[] = [];
  live.on("data", (c: Buffer) => got.push(c));
  live.write("before");
  await waitFor(() => Buffer.concat(got).toString() === "before", "live echo");
  b.proc.child.kill("SIGTERM");
  await waitFor(() => b.proc.stdout().includes('"event":"draining"'), "drain start");
  await assert.rejects(dial(t, port, "127.0.0.2"), /ECONNREFUSED/, "stopped listening");
  live.write("-during");
  await waitFor(
    () => Buffer.concat(got).toString() === "before-during",
    "the live tunnel keeps working while draining",
  );
  live.end();
  assert.equal(await b.proc.exited, 0);
  // The other instance still serves.
  const again = await roundTrip(await dial(t, port, "127.0.0.1"), Buffer.from("still up"));
  assert.equal(again.toString(), "still up");
});

test("a site that accepts but never answers is refused at GATEWAY_CONNECT_TIMEOUT_MS", {
  timeout: 30_000,
}, async (t) => {
  const h = await startHarness(t);
  // A listener that accepts the relayed connection and then says nothing (a hung site).
  const mute = new HybridConnectionListener({
    endpoint: h.relay.url,
    hybridConnection: `site-${h.siteId}`,
    keyName: "listen",
    key: h.listenKey,
  });
  const held: WebSocket[] = [];
  mute.on("accept", (req) => {
    req.accept().then(
      (ws) => held.push(ws),
      () => {},
    );
  });
  t.after(async () => {
    await mute.close();
    for (const ws of held) ws.terminate();
  });
  mute.start();
  await waitFor(() => mute.state.status === "online", "mute listener online");
  const port = await freePort();
  await h.ledger.allocate({ siteId: h.siteId, portName: "echo", endpoint: { kind: "tcp", port } });
  const gw = await startGateway(t, h, { GATEWAY_CONNECT_TIMEOUT_MS: "1000" });
  const started = Date.now();
  assert.equal((await closedBy(await dial(t, port), 10_000)).length, 0);
  assert.ok(Date.now() - started >= 900, "the gateway waited for the site's answer first");
  // held[0] is the tunnel; a standby the gateway opens for the site afterwards may follow it.
  await waitFor(() => held[0]?.readyState === held[0]?.CLOSED, "the tunnel is closed");
  assert.equal(
    await gw.metric("gateway_connections_refused_total", { route: String(port), reason: "relay_error" }),
    1,
  );
  assert.equal(await gw.metric("gateway_connections_active", { route: String(port) }), 0);
});
