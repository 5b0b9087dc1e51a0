/**
 * PROXY v2 per mapping (strip / forward), /metrics and /healthz on METRICS_PORT, and the direct
 * methods through the real service Client.invokeDeviceMethod.
 */
import assert from "node:assert/strict";
import { createServer, type Socket } from "node:net";
import { test } from "node:test";
import { encodeProxyV2 } from "../../lib/proxy-protocol/index.ts";
import { waitFor } from "../helpers/index.ts";
import {
  MODULE_ID,
  openPort,
  patchDesired,
  startModuleProcess,
  startSite,
  waitReported,
} from "./module-harness.ts";

test("PROXY v2 strip/forward, metrics, health and direct methods", { timeout: 60_000 }, async (t) => {
  const site = await startSite(t);
  const received: Buffer[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on("data", (d) => received.push(d));
    s.on("error", () => {});
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  const port = (server.address() as { port: number }).port;
  const mod = await startModuleProcess(t, site);
  const v = await patchDesired(site, {
    relay: site.relaySection(),
    mappings: {
      strip: { target: `127.0.0.1:${port}`, proxyProtocol: "strip" },
      fwd: { target: `127.0.0.1:${port}`, proxyProtocol: "forward" },
    },
  });
  await waitReported(site, (r) => r.appliedDesiredVersion === v && r.relay?.status === "online", "applied");
  const header = encodeProxyV2({
    sourceAddress: "203.0.113.7",
    sourcePort: 5555,
    destinationAddress: "10.0.0.1",
    destinationPort: 443,
  });

  for (const [name, expectHeader] of [
    ["strip", false],
    ["fwd", true],
  ] as const) {
    received.length = 0;
    const { ws } = await openPort(site, name);
    ws.send(Buffer.concat([header, Buffer.from("payload")]));
    const got = await waitFor(() => {
      const all = Buffer.concat(received);
      return all.includes(Buffer.from("payload")) ? all : undefined;
    }, `${name} bytes at the target`);
    assert.deepEqual(
      got,
      expectHeader ? Buffer.concat([header, Buffer.from("payload")]) : Buffer.from("payload"),
    );
    ws.close();
  }

  const health = await fetch(`http://127.0.0.1:${mod.metricsPort}/healthz`);
  assert.equal(health.status, 200);
  const metrics = await (await fetch(`http://127.0.0.1:${mod.metricsPort}/metrics`)).text();
  assert.match(metrics, /relay_listener_connections_total\{mapping="strip",outcome="accepted"\} 1/);
  assert.match(metrics, /relay_listener_control_channels_online 2/);

  const status = await site.svc.client.invokeDeviceMethod(site.deviceId, MODULE_ID, {
    methodName: "getStatus",
    payload: null,
  });
  const body = status.result as unknown as {
    payload: { relay: { status: string }; mappings: Record<string, unknown> };
  };
  assert.equal(body.payload.relay.status, "online");
  assert.ok(body.payload.mappings.fwd);
  const probe = await site.svc.client.invokeDeviceMethod(site.deviceId, MODULE_ID, {
    methodName: "testTarget",
    payload: { mapping: "fwd" },
  });
  const pr = (probe.result as unknown as { payload: { ok: boolean; connectMs: number } }).payload;
  assert.equal(pr.ok, true);
  assert.equal(typeof pr.connectMs, "number");
  const bad = await site.svc.client.invokeDeviceMethod(site.deviceId, MODULE_ID, {
    methodName: "testTarget",
    payload: { nope: 1 },
  });
  assert.equal((bad.result as unknown as { status: number }).status, 400);
});
