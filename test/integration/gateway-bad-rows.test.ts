/**
 * A ledger row the gateway cannot serve (a bad source CIDR written by hand or by an older
 * rollout) is skipped, never silent: the real gateway process counts it in
 * `gateway_ledger_bad_rows`, names it in `/readyz`, and keeps serving the other routes.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { freePort, startGateway, startHarness } from "./gateway-harness.ts";

test("a route with a bad CIDR shows in /readyz and the bad-rows metric", async (t) => {
  const h = await startHarness(t, "b1");
  const [good, bad] = [await freePort(), await freePort()];
  await h.ledger.allocate({ siteId: h.siteId, portName: "ok", endpoint: { kind: "tcp", port: good } });
  const row = await h.ledger.allocate({
    siteId: h.siteId,
    portName: "ssh",
    endpoint: { kind: "tcp", port: bad },
  });
  await h.ledger.updateRoute({ ...row, allowCidrs: ["10.0.0.0/33"] });
  const gw = await startGateway(t, h);
  const ready = await gw.admin("/readyz");
  assert.equal(ready.status, 200, "ready: the other routes serve");
  const body = JSON.parse(ready.text) as {
    listening: number;
    badRows: Array<{ rowKey: string; message: string }>;
  };
  assert.equal(body.listening, 1);
  assert.equal(body.badRows.length, 1);
  assert.equal(body.badRows[0]?.rowKey, String(bad));
  assert.match(body.badRows[0]?.message ?? "", /10\.0\.0\.0\/33/);
  assert.equal(await gw.metric("gateway_ledger_bad_rows", {}), 1);
});
