/**
 * A public port that cannot be bound is never silent (issue 11, item 15): a port of the ledger
 * held by another process (as an outgoing connection's ephemeral port would hold it) shows in
 * `/readyz`, in `gateway_ports_unbound` / `gateway_port_bind_failures_total` and in the gateway's
 * status row that `relay-fleet status` reads; the gateway retries it on its own (no reload
 * needed) and serves it as soon as it is free.
 */
import assert from "node:assert/strict";
import { connect, createServer, type Socket } from "node:net";
import { test } from "node:test";
import { createTableClient, readGatewayStatuses } from "../../lib/ledger/index.ts";
import { waitFor } from "../helpers/index.ts";
import {
  echoServer,
  freePort,
  roundTrip,
  startGateway,
  startHarness,
  startHarnessSite,
} from "./gateway-harness.ts";

function dial(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, "127.0.0.1", () => resolve(s));
    s.once("error", reject);
  });
}

test("a taken public port is reported in /readyz, metrics and the status row, retried, then served", {
  timeout: 90_000,
}, async (t) => {
  const h = await startHarness(t);
  const echo = await echoServer(t);
  await startHarnessSite(t, h, { echo: echo.port, free: echo.port });
  const [taken, free] = [await freePort(), await freePort()];
  // Someone else holds `taken` on the gateway's address before the gateway starts.
  const holder = createServer();
  await new Promise<void>((r) => holder.listen(taken, "127.0.0.1", r));
  t.after(() => holder.close());
  await h.ledger.allocate({ siteId: h.siteId, portName: "echo", endpoint: { kind: "tcp", port: taken } });
  await h.ledger.allocate({ siteId: h.siteId, portName: "free", endpoint: { kind: "tcp", port: free } });
  // No periodic reload: the retry must come from the gateway's own bind backoff.
  const gw = await startGateway(t, h, { LEDGER_RELOAD_INTERVAL_MS: "0" });

  const ready = await gw.admin("/readyz");
  assert.equal(ready.status, 200, "the other routes keep the instance in the load balancer");
  const body = JSON.parse(ready.text) as { status: string; unbound: Array<{ port: number; error: string }> };
  assert.equal(body.status, "degraded");
  assert.deepEqual(
    body.unbound.map((u) => u.port),
    [taken],
  );
  assert.match(body.unbound[0]?.error ?? "", /EADDRINUSE/);
  assert.equal(await gw.metric("gateway_ports_unbound", {}), 1);
  assert.equal(await gw.metric("gateway_listening_ports", {}), 1);
  await waitFor(
    async () => (await gw.metric("gateway_port_bind_failures_total", { port: String(taken) })) >= 2,
    "the gateway retrying the bind",
  );
  assert.match(gw.proc.stdout(), new RegExp(`"event":"listen-failed","port":${taken}`));

  // The status row `relay-fleet status` reads names the port and the error.
  const statusTable = createTableClient(h.connectionString, "gatewaystatus");
  const row = await waitFor(async () => {
    const rows = await readGatewayStatuses(statusTable);
    return rows.find((r) => r.unbound.some((u) => u.port === taken));
  }, "the gateway's status row listing the unbound port");
  assert.match(row.unbound[0]?.error ?? "", /EADDRINUSE/);
  assert.equal(row.listening, 1);

  // Once the port is free the gateway takes it by itself and serves it.
  await new Promise<void>((r) => holder.close(() => r()));
  await waitFor(
    async () => (await gw.metric("gateway_ports_unbound", {})) === 0,
    "the port bound after it was freed",
    { timeoutMs: 20_000, intervalMs: 200 },
  );
  const back = await roundTrip(await dial(taken), Buffer.from("served at last"));
  assert.equal(back.toString(), "served at last");
  const after = JSON.parse((await gw.admin("/readyz")).text) as { status: string; unbound: unknown[] };
  assert.equal(after.status, "ready");
  assert.deepEqual(after.unbound, []);
  await waitFor(async () => {
    const rows = await readGatewayStatuses(statusTable);
    return rows.length > 0 && rows.every((r) => r.unbound.length === 0 && r.listening === 2);
  }, "the status row cleared");

  // A clean stop removes the row: a stopped gateway is not a broken one.
  assert.equal(await gw.proc.stop("SIGTERM"), 0);
  assert.deepEqual(await readGatewayStatuses(statusTable), []);
});
