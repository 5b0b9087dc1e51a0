/**
 * The gateway's admin port is not open by default (issue 11, item 14): on a non-loopback bind
 * without a token `/metrics` and `/reload` refuse while the load balancer's probes stay open;
 * with a token they need it; and a flood of `POST /reload` is coalesced into a few ledger reads
 * (each answer still reflects a read begun after its request).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { freePort, startGateway, startHarness } from "./gateway-harness.ts";

const TOKEN = "admin-token-for-the-test-0123456789";

test("admin bound to all interfaces without a token: probes open, /metrics and /reload refused", {
  timeout: 60_000,
}, async (t) => {
  const h = await startHarness(t);
  const gw = await startGateway(t, h, { GATEWAY_HEALTH_HOST: "0.0.0.0" });
  assert.equal((await gw.admin("/healthz")).status, 200);
  assert.equal((await gw.admin("/readyz")).status, 200);
  const metrics = await gw.admin("/metrics");
  assert.equal(metrics.status, 403);
  assert.match(metrics.text, /GATEWAY_ADMIN_TOKEN/);
  assert.doesNotMatch(metrics.text, /gateway_routes/);
  const reload = await gw.admin("/reload", "POST");
  assert.equal(reload.status, 403);
  assert.match(gw.proc.stdout(), /"event":"admin-locked"/);
});

test("with a token, /reload needs it, and 300 reload requests cost a few ledger reads", {
  timeout: 60_000,
}, async (t) => {
  const h = await startHarness(t);
  const gw = await startGateway(t, h, { GATEWAY_HEALTH_HOST: "0.0.0.0", GATEWAY_ADMIN_TOKEN: TOKEN });
  assert.equal((await gw.admin("/reload", "POST", null)).status, 401);
  assert.equal((await gw.admin("/metrics", "GET", "wrong-token-of-the-same-len-456789")).status, 401);
  assert.equal((await gw.admin("/readyz", "GET", null)).status, 200, "probes need no token");

  const reads = async () =>
    (await gw.metric("gateway_reloads_total", { result: "ok" })) +
    (await gw.metric("gateway_reloads_total", { result: "failed" }));
  const before = await reads();
  // 30 clients, each sending its next request as soon as the last one is answered.
  const started = Date.now();
  const statuses: number[] = [];
  await Promise.all(
    Array.from({ length: 30 }, async () => {
      for (let i = 0; i < 10; i++) statuses.push((await gw.admin("/reload", "POST")).status);
    }),
  );
  const elapsed = Date.now() - started;
  const made = (await reads()) - before;
  assert.equal(statuses.length, 300);
  assert.ok(
    statuses.every((s) => s === 200),
    "every request is answered with a read",
  );
  // Reads start at least 250 ms apart (the default GATEWAY_RELOAD_MIN_INTERVAL_MS).
  assert.ok(made <= Math.ceil(elapsed / 250) + 1, `${made} ledger reads for 300 requests in ${elapsed} ms`);

  // Coalescing never answers from a stale read: a route written just before a reload is in it.
  const port = await freePort();
  await h.ledger.allocate({ siteId: h.siteId, portName: "echo", endpoint: { kind: "tcp", port } });
  const after = JSON.parse((await gw.admin("/reload", "POST")).text) as { ports: number[] };
  assert.ok(after.ports.includes(port), "the reload's answer includes the route written before it");
});
