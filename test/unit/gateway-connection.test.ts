/**
 * cloud/gateway/src/connection.ts: one client connection from accept to close. The route, its
 * limits, the circuit breaker and the metrics are the gateway's own; only the relay side (opening
 * a tunnel, pumping it) is faked, so each case shows what the connection asks of the tunnel, what
 * it answers the client, and what it counts and audits.
 */
import assert from "node:assert/strict";
import { createServer, connect as netConnect, type Socket } from "node:net";
import { Writable } from "node:stream";
import { type TestContext, test } from "node:test";
import type { WebSocket } from "ws";
import { CircuitBreaker } from "../../cloud/gateway/src/circuit-breaker.ts";
import { type ConnectionContext, handleConnection } from "../../cloud/gateway/src/connection.ts";
import { createMetrics } from "../../cloud/gateway/src/metrics.ts";
import { RouteStates } from "../../cloud/gateway/src/route-state.ts";
import { buildRoutingTable, type Route } from "../../cloud/gateway/src/routing-table.ts";
import { RelayFleetError } from "../../lib/errors.ts";
import type { Pump, PumpResult } from "../../lib/hyco/pump.ts";
import type { Tunnel, TunnelPumpOptions } from "../../lib/hyco/tunnel.ts";
import { parseLedgerRows } from "../../lib/ledger/read-routes.ts";
import { createLogger } from "../../lib/log.ts";
import { ledgerRouteRow, ledgerSiteRow } from "../helpers/ledger-rows.ts";

const site = ledgerSiteRow("s1");
const routeRow = (rowKey: string, fields: Record<string, unknown> = {}) =>
  ledgerRouteRow(rowKey, { portName: "web", ...fields });

/** What the fake relay side saw: tunnels asked for, bytes sent on them, pumps started. */
interface Harness {
  ctx: ConnectionContext;
  opened: Route[];
  sent: Buffer[];
  pumps: Array<{ idleTimeoutMs: number; finish(result: PumpResult): void }>;
  logs: Array<Record<string, unknown>>;
  /** Connects a client to a server that hands each socket to handleConnection on `port`. */
  connectClient(port: number): Promise<{ client: Socket; handled: Promise<void> }>;
  metric(name: string, labels: Record<string, string>): Promise<number>;
}

function harness(
  t: TestContext,
  rows: Record<string, unknown>[],
  openTunnel: (route: Route, signal: AbortSignal) => Promise<void> = async () => {},
  options: { draining?: boolean } = {},
): Harness {
  const table = buildRoutingTable(parseLedgerRows([site, ...rows]), 1);
  const metrics = createMetrics({ defaultMetrics: false });
  const logs: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString("utf8").split("\n")) if (line) logs.push(JSON.parse(line));
      done();
    },
  });
  const opened: Route[] = [];
  const sent: Buffer[] = [];
  const pumps: Harness["pumps"] = [];
  const fakeWs = {
    send: (data: Buffer) => sent.push(Buffer.from(data)),
    terminate: () => {},
  } as unknown as WebSocket;
  const pump = (_socket: Socket, { idleTimeoutMs = 0 }: TunnelPumpOptions = {}): Pump => {
    let finish!: (r: PumpResult) => void;
    const done = new Promise<PumpResult>((r) => {
      finish = r;
    });
    pumps.push({ idleTimeoutMs, finish });
    return {
      done,
      abort: () => finish({ bytesToSocket: 0, bytesToWebSocket: 0, endedBy: "aborted" }),
      takeNextStream: () => [],
    };
  };
  // The tunnel the fake relay side opens: its WebSocket records what is sent, its pump is faked.
  const fakeTunnel = { ws: fakeWs, pump } as unknown as Tunnel;
  const ctx: ConnectionContext = {
    table: () => table,
    draining: () => options.draining === true,
    firstBytesTimeoutMs: 2_000,
    openTunnel: async (route, signal) => {
      opened.push(route);
      await openTunnel(route, signal);
      return fakeTunnel;
    },
    states: new RouteStates(),
    breaker: new CircuitBreaker({ threshold: 2 }),
    metrics,
    log: createLogger("gateway-test", { level: "debug", destination }),
    track: () => () => {},
  };
  const servers: Array<{ close(): void }> = [];
  t.after(() => {
    for (const s of servers) s.close();
  });
  return {
    ctx,
    opened,
    sent,
    pumps,
    logs,
    async connectClient(port) {
      let handled!: Promise<void>;
      const accepted = new Promise<void>((resolve) => {
        const server = createServer((socket) => {
          handled = handleConnection(ctx, port, socket);
          resolve();
        });
        servers.push(server);
        server.listen(0, "127.0.0.1", () => {
          const client = netConnect((server.address() as { port: number }).port, "127.0.0.1");
          client.on("error", () => {});
          t.after(() => client.destroy());
          clientReady(client);
        });
      });
      let clientReady!: (c: Socket) => void;
      const client = await new Promise<Socket>((r) => {
        clientReady = r;
      });
      await accepted;
      return { client, handled };
    },
    async metric(name, labels) {
      const m = (await metrics.registry.getSingleMetric(name)?.get())?.values ?? [];
      const hit = m.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x));
      return hit?.value ?? 0;
    },
  };
}

/** Everything the client receives until the gateway closes its side. */
function received(client: Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  client.on("data", (c: Buffer) => chunks.push(c));
  return new Promise((r) => client.once("close", () => r(Buffer.concat(chunks))));
}

const audits = (h: Harness) =>
  h.logs.filter((l) => l.event === "audit").map((l) => l.audit as Record<string, unknown>);

test("a port with no route is refused as no_route, counted and audited, and the client closed", async (t) => {
  const h = harness(t, [routeRow("40001")]);
  const { client, handled } = await h.connectClient(40999);
  const closed = received(client);
  await handled;
  await closed;
  assert.equal(h.opened.length, 0);
  assert.equal(
    await h.metric("gateway_connections_refused_total", { route: "40999", reason: "no_route" }),
    1,
  );
  assert.deepEqual(
    audits(h).map((a) => [a.end, a.reason, a.publicPort]),
    [["refused", "no_route", 40999]],
  );
});

test("a draining gateway refuses new connections as draining", async (t) => {
  const h = harness(t, [routeRow("40001")], undefined, { draining: true });
  const { handled } = await h.connectClient(40001);
  await handled;
  assert.equal(h.opened.length, 0);
  assert.equal(
    await h.metric("gateway_connections_refused_total", { route: "40001", reason: "draining" }),
    1,
  );
});

test("a dedicated port opens its route's tunnel, sends the PROXY v2 header first, pumps and audits the bytes", async (t) => {
  const h = harness(t, [routeRow("40001", { proxyProtocol: true, idleTimeoutMs: 60_000 })]);
  const { handled } = await h.connectClient(40001);
  while (h.pumps.length === 0) await new Promise((r) => setTimeout(r, 5));
  assert.equal(h.opened.length, 1);
  assert.equal(h.opened[0]?.siteId, "s1");
  assert.equal(h.pumps[0]?.idleTimeoutMs, 60_000);
  // PROXY protocol v2 signature, then nothing else (a dedicated port reads no byte first).
  assert.equal(h.sent.length, 1);
  assert.equal(h.sent[0]?.subarray(0, 12).toString("hex"), "0d0a0d0a000d0a515549540a");
  assert.equal(await h.metric("gateway_connections_active", { route: "40001" }), 1);
  h.pumps[0]?.finish({ bytesToSocket: 300, bytesToWebSocket: 200, endedBy: "completed" });
  await handled;
  assert.equal(await h.metric("gateway_connections_active", { route: "40001" }), 0);
  assert.equal(await h.metric("gateway_bytes_total", { route: "40001", direction: "in" }), 200);
  assert.equal(await h.metric("gateway_bytes_total", { route: "40001", direction: "out" }), 300);
  const [audit] = audits(h);
  assert.equal(audit?.end, "completed");
  assert.equal(audit?.site, "s1");
  assert.equal(audit?.bytesIn, 200);
  assert.equal(audit?.bytesOut, 300);
});

test("a shared port routes by Host and replays the request head on the tunnel before pumping", async (t) => {
  const h = harness(t, [
    routeRow("8080", { kind: "shared", siteId: "", portName: "" }),
    routeRow("8080:shop.example.com", { kind: "http-host" }),
  ]);
  const { client, handled } = await h.connectClient(8080);
  const head = "GET / HTTP/1.1\r\nHost: shop.example.com\r\n\r\n";
  client.write(head);
  while (h.pumps.length === 0) await new Promise((r) => setTimeout(r, 5));
  assert.equal(h.opened[0]?.key, "8080:shop.example.com");
  assert.equal(Buffer.concat(h.sent).toString("latin1"), head);
  h.pumps[0]?.finish({ bytesToSocket: 0, bytesToWebSocket: 0, endedBy: "completed" });
  await handled;
  // The replayed head counts as bytes in.
  assert.equal(
    await h.metric("gateway_bytes_total", { route: "8080:shop.example.com", direction: "in" }),
    head.length,
  );
});

test("an unknown Host on a shared port is answered 421 and refused as unknown_name", async (t) => {
  const h = harness(t, [
    routeRow("8080", { kind: "shared", siteId: "", portName: "" }),
    routeRow("8080:shop.example.com", { kind: "http-host" }),
  ]);
  const { client, handled } = await h.connectClient(8080);
  const answer = received(client);
  client.write("GET / HTTP/1.1\r\nHost: other.example.com\r\n\r\n");
  await handled;
  assert.match((await answer).toString("latin1"), /^HTTP\/1\.1 421 Misdirected Request\r\n/);
  assert.equal(h.opened.length, 0);
  assert.equal(
    await h.metric("gateway_connections_refused_total", { route: "8080", reason: "unknown_name" }),
    1,
  );
});

test("a site with no listener is refused as no_listener, and repeated failures open its circuit", async (t) => {
  const h = harness(t, [routeRow("40001")], async () => {
    throw new RelayFleetError("RF_ERR_RELAY_NO_LISTENER", "no listener");
  });
  for (let i = 0; i < 2; i++) await (await h.connectClient(40001)).handled;
  assert.equal(
    await h.metric("gateway_connections_refused_total", { route: "40001", reason: "no_listener" }),
    2,
  );
  assert.equal(await h.metric("gateway_open_circuits", {}), 1);
  // The breaker's threshold (2) is reached: the next client is refused without a tunnel attempt.
  await (await h.connectClient(40001)).handled;
  assert.equal(h.opened.length, 2);
  assert.equal(
    await h.metric("gateway_connections_refused_total", { route: "40001", reason: "circuit_open" }),
    1,
  );
});

test("a client that leaves during tunnel setup aborts the setup and leaves no slot taken", async (t) => {
  let aborted = false;
  const h = harness(
    t,
    [routeRow("40001", { maxConnections: 1 })],
    (_route, signal) =>
      new Promise((_resolve, reject) => {
        signal.addEventListener("abort", () => {
          aborted = true;
          reject(new RelayFleetError("RF_ERR_RELAY_TIMEOUT", "aborted"));
        });
      }),
  );
  const { client, handled } = await h.connectClient(40001);
  while (h.opened.length === 0) await new Promise((r) => setTimeout(r, 5));
  client.destroy();
  await handled;
  assert.equal(aborted, true);
  assert.equal(await h.metric("gateway_connections_active", { route: "40001" }), 0);
  assert.deepEqual(
    audits(h).map((a) => [a.end, a.reason]),
    [["reset", "client closed during tunnel setup"]],
  );
  // Not the site's fault: the breaker is not fed.
  assert.equal(h.ctx.breaker.state("s1"), "closed");
});
