/**
 * The gateway as a real process against Azurite (port ledger) and the relay emulator, with the
 * real relayListener module as the site (configured through its twin on the IoT Hub emulator)
 * forwarding to real TCP / TLS targets: dedicated ports, SNI and Host routing, refusals, per-source
 * rate limits, PROXY v2 stripped and forwarded by the module, hot reload under a live transfer,
 * first-bytes timeout, garbage, an unknown logical port, an azbridge port name with '.'.
 */
import assert from "node:assert/strict";
import { connect, createServer, type Socket } from "node:net";
import { after, before, describe, test } from "node:test";
import { createServer as createTlsServer, connect as tlsConnect } from "node:tls";
import { parseProxyV2 } from "../../lib/proxy-protocol/index.ts";
import { createLocalCertificates } from "../../lib/tls/local-ca.ts";
import { sleep, waitFor } from "../helpers/index.ts";
import {
  closedBy,
  echoServer,
  freePort,
  type GatewayProcess,
  type Harness,
  randomBytes,
  roundTrip,
  sha,
  startGateway,
  startHarness,
  startModuleSite,
} from "./gateway-harness.ts";

const cleanups: Array<() => unknown> = [];
const ctx = { after: (fn: () => unknown) => cleanups.push(fn) };
let h: Harness;
let gw: GatewayProcess;
const ports: Record<string, number> = {};
let tlsCa = "";
let forwarded: () => Buffer;

/** Connects to the gateway on 127.0.0.1, from `localAddress` (another loopback source) if given. */
function dial(port: number, localAddress?: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: "127.0.0.1", ...(localAddress ? { localAddress } : {}) }, () =>
      resolve(s),
    );
    s.once("error", reject);
    cleanups.push(() => s.destroy());
  });
}

describe("gateway routing (real processes)", { timeout: 60_000 }, () => {
  before(async () => {
    h = await startHarness(ctx);
    const echo = await echoServer(ctx);
    const certs = createLocalCertificates(["app.example.test"]);
    tlsCa = certs.caCert;
    const tlsServer = createTlsServer({ cert: certs.cert, key: certs.key }, (s) => {
      s.on("error", () => {});
      s.pipe(s);
    });
    await new Promise<void>((r) => tlsServer.listen(0, "127.0.0.1", r));
    cleanups.push(() => tlsServer.close());
    // A target that records every byte it gets (to see the forwarded PROXY v2 header).
    const seen: Buffer[] = [];
    forwarded = () => Buffer.concat(seen);
    const recorder = createServer((s) => {
      s.on("error", () => {});
      s.on("data", (d: Buffer) => seen.push(d));
    });
    await new Promise<void>((r) => recorder.listen(0, "127.0.0.1", r));
    cleanups.push(() => recorder.close());
    const target = (port: number) => `127.0.0.1:${port}`;
    const site = await startModuleSite(ctx, h, {
      echo: { target: target(echo.port) },
      tls: { target: target((tlsServer.address() as { port: number }).port) },
      web: { target: target(echo.port) },
      pxstrip: { target: target(echo.port), proxyProtocol: "strip" },
      pxfwd: { target: target((recorder.address() as { port: number }).port), proxyProtocol: "forward" },
      // An azbridge port name twin keys cannot hold: the mapping says it in portName.
      rdp_main: { target: target(echo.port), portName: "rdp.main" },
    });
    assert.equal(site.module.child.exitCode, null, "the module runs");
    for (const name of [
      "tcp",
      "shared",
      "http",
      "allow",
      "cap",
      "pxstrip",
      "pxfwd",
      "rate",
      "ghost",
      "late",
      "dotted",
      "undotted",
    ])
      ports[name] = await freePort();
    const alloc = (
      portName: string,
      endpoint: Parameters<Harness["ledger"]["allocate"]>[0]["endpoint"],
      options = {},
    ) => h.ledger.allocate({ siteId: h.siteId, portName, endpoint, options });
    await alloc("echo", { kind: "tcp", port: ports.tcp! });
    await alloc("tls", { kind: "tls-sni", port: ports.shared!, hostname: "app.example.test" });
    await alloc("web", { kind: "http-host", port: ports.http!, hostname: "shop.example.test" });
    await alloc("echo", { kind: "tcp", port: ports.allow! }, { allowCidrs: ["10.0.0.0/8"] });
    await alloc("echo", { kind: "tcp", port: ports.cap! }, { maxConnections: 1 });
    await alloc("pxstrip", { kind: "tcp", port: ports.pxstrip! }, { proxyProtocol: true });
    await alloc("pxfwd", { kind: "tcp", port: ports.pxfwd! }, { proxyProtocol: true });
    await alloc("echo", { kind: "tcp", port: ports.rate! }, { ratePerMinute: 3 });
    await alloc("nosuchport", { kind: "tcp", port: ports.ghost! });
    await alloc("rdp_main", { kind: "tcp", port: ports.dotted! }, { logicalPort: "rdp.main" });
    // The same mapping by its twin name: not its logical port any more, so the module refuses it.
    await alloc("rdp_main", { kind: "tcp", port: ports.undotted! });
    gw = await startGateway(ctx, h, { GATEWAY_FIRST_BYTES_TIMEOUT_MS: "500" });
  });
  after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });

  test("ready, healthy, and listening on every ledger port", async () => {
    assert.equal((await gw.admin("/healthz")).status, 200);
    const ready = await gw.admin("/readyz");
    assert.equal(ready.status, 200);
    assert.equal(JSON.parse(ready.text).listening, 11);
  });

  test("dedicated port: 2 MiB byte-exact both ways", async () => {
    const payload = randomBytes(2 * 1024 * 1024);
    const back = await roundTrip(await dial(ports.tcp!), payload);
    assert.equal(back.length, payload.length);
    assert.equal(sha(back), sha(payload));
    assert.ok(
      (await gw.metric("gateway_bytes_total", { route: String(ports.tcp), direction: "in" })) >=
        payload.length,
    );
  });

  test("shared port: real TLS handshake with the site's server, routed by SNI", async () => {
    const payload = randomBytes(256 * 1024);
    const socket = tlsConnect({
      port: ports.shared!,
      host: "127.0.0.1",
      servername: "app.example.test",
      ca: tlsCa,
    });
    cleanups.push(() => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      socket.once("secureConnect", resolve);
      socket.once("error", reject);
    });
    assert.equal(socket.authorized, true, "the site's certificate reached the client untouched");
    const chunks: Buffer[] = [];
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.write(payload);
    await waitFor(() => Buffer.concat(chunks).length >= payload.length, "TLS echo");
    assert.equal(sha(Buffer.concat(chunks)), sha(payload));
    socket.end();
  });

  test("shared port: an unknown SNI name gets an unrecognized_name alert, not a hang", async () => {
    const socket = tlsConnect({
      port: ports.shared!,
      host: "127.0.0.1",
      servername: "nobody.example.test",
      ca: tlsCa,
    });
    const err = await new Promise<Error>((resolve) => socket.once("error", resolve));
    assert.match(err.message, /unrecognized name|alert number 112/i);
    socket.destroy();
    assert.ok(
      (await gw.metric("gateway_connections_refused_total", {
        route: String(ports.shared),
        reason: "unknown_name",
      })) >= 1,
    );
  });

  test("Host routing on plain HTTP, and 421 for an unknown host", async () => {
    const req = "GET / HTTP/1.1\r\nHost: shop.example.test\r\n\r\n";
    const echoed = await roundTrip(await dial(ports.http!), Buffer.from(req));
    assert.equal(echoed.toString(), req, "the request reached the site unchanged");
    const refused = await roundTrip(
      await dial(ports.http!),
      Buffer.from("GET / HTTP/1.1\r\nHost: other.test\r\n\r\n"),
    );
    assert.match(refused.toString(), /^HTTP\/1\.1 421 /);
  });

  test("garbage instead of a ClientHello is refused and the gateway lives on", async () => {
    const s = await dial(ports.shared!);
    s.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x02, 0xff, 0xff, 0xff, 0xff]));
    const reply = await closedBy(s);
    assert.equal(reply[0], 0x15, "a TLS alert record");
    const s2 = await dial(ports.shared!);
    s2.write(Buffer.from([0x00, 0x01, 0x02, 0x03]));
    await closedBy(s2);
    assert.equal((await gw.admin("/healthz")).status, 200);
    assert.ok(
      (await gw.metric("gateway_connections_refused_total", {
        route: String(ports.shared),
        reason: "bad_client_hello",
      })) >= 2,
    );
  });

  test("a client that sends nothing on a shared port is timed out", async () => {
    const s = await dial(ports.shared!);
    await closedBy(s, 10_000);
    assert.ok(
      (await gw.metric("gateway_connections_refused_total", {
        route: String(ports.shared),
        reason: "first_bytes_timeout",
      })) >= 1,
    );
  });

  test("allowlist refuses a source outside its CIDRs", async () => {
    const s = await dial(ports.allow!);
    assert.equal((await closedBy(s)).length, 0);
    assert.equal(
      await gw.metric("gateway_connections_refused_total", {
        route: String(ports.allow),
        reason: "allowlist",
      }),
      1,
    );
  });

  test("connection cap: the second concurrent connection is refused, the first keeps working", async () => {
    const first = await dial(ports.cap!);
    const got: Buffer[] = [];
    first.on("data", (c: Buffer) => got.push(c));
    first.write("one");
    await waitFor(() => Buffer.concat(got).toString() === "one", "first echo");
    const second = await dial(ports.cap!);
    await closedBy(second);
    assert.equal(
      await gw.metric("gateway_connections_refused_total", {
        route: String(ports.cap),
        reason: "max_connections",
      }),
      1,
    );
    first.write("two");
    await waitFor(() => Buffer.concat(got).toString() === "onetwo", "first still echoes");
    first.end();
  });

  test("PROXY v2 strip: the module removes the gateway's header, the target sees raw bytes", async () => {
    const payload = randomBytes(256 * 1024);
    const back = await roundTrip(await dial(ports.pxstrip!), payload);
    assert.equal(back.length, payload.length, "the echo target saw exactly the client's bytes");
    assert.equal(sha(back), sha(payload));
  });

  test("PROXY v2 forward: the target receives the header with the real client address", async () => {
    const s = await dial(ports.pxfwd!, "127.0.0.3");
    s.write("hello");
    await waitFor(() => forwarded().length >= 16 + 12 + 5, "header and payload at the target");
    const { header, rest } = parseProxyV2(forwarded());
    assert.equal(header.command, "PROXY");
    assert.equal(header.family, "TCP4");
    assert.equal(header.sourceAddress, "127.0.0.3", "the client's address, not the module's");
    assert.equal(header.sourcePort, s.localPort);
    assert.equal(header.destinationPort, ports.pxfwd);
    assert.equal(rest.toString(), "hello");
    s.destroy();
  });

  test("rate limit per source: a burst above ratePerMinute is refused and counted", async () => {
    for (let i = 0; i < 3; i++) {
      const back = await roundTrip(await dial(ports.rate!), Buffer.from(`ping ${i}`));
      assert.equal(back.toString(), `ping ${i}`, `connection ${i + 1} of 3 goes through`);
    }
    for (let i = 0; i < 2; i++) assert.equal((await closedBy(await dial(ports.rate!))).length, 0);
    const route = String(ports.rate);
    assert.equal(await gw.metric("gateway_connections_refused_total", { route, reason: "rate_limited" }), 2);
    assert.equal(await gw.metric("gateway_connections_total", { route }), 3);
    // The limit is per source address: another client is not affected by the first one's burst.
    const other = await roundTrip(await dial(ports.rate!, "127.0.0.4"), Buffer.from("other source"));
    assert.equal(other.toString(), "other source");
  });

  test("a site in use keeps a standby connection and the next tunnel takes it", async () => {
    const first = await roundTrip(await dial(ports.tcp!), Buffer.from("warm up"));
    assert.equal(first.toString(), "warm up");
    await waitFor(async () => (await gw.metric("gateway_standby_ready", {})) >= 1, "a standby ready");
    const hits = await gw.metric("gateway_standby_takes_total", { result: "hit" });
    const back = await roundTrip(await dial(ports.tcp!), Buffer.from("over a standby"));
    assert.equal(back.toString(), "over a standby");
    assert.equal(await gw.metric("gateway_standby_takes_total", { result: "hit" }), hits + 1);
  });

  test("a port the site does not know is closed at once and counted", async () => {
    const s = await dial(ports.ghost!);
    await closedBy(s);
    assert.equal(
      await gw.metric("gateway_connections_refused_total", {
        route: String(ports.ghost),
        reason: "port_rejected",
      }),
      1,
    );
  });

  test("an azbridge port name with '.': the gateway names the mapping's portName and the module serves it", async () => {
    const back = await roundTrip(await dial(ports.dotted!), Buffer.from("via rdp.main"));
    assert.equal(back.toString(), "via rdp.main");
    // The mapping answers to its portName only: asked by its twin name, the module closes.
    const s = await dial(ports.undotted!);
    await closedBy(s);
    assert.equal(
      await gw.metric("gateway_connections_refused_total", {
        route: String(ports.undotted),
        reason: "port_rejected",
      }),
      1,
    );
  });

  test("reload adds and removes routes while a long transfer on another route continues", async () => {
    const long = await dial(ports.tcp!);
    const received: Buffer[] = [];
    long.on("data", (c: Buffer) => received.push(c));
    const sent: Buffer[] = [];
    const writer = setInterval(() => {
      const b = randomBytes(16 * 1024);
      sent.push(b);
      long.write(b);
    }, 20);
    await sleep(300);
    const listeningBefore = await gw.metric("gateway_listening_ports", {});
    await h.ledger.allocate({
      siteId: h.siteId,
      portName: "echo",
      endpoint: { kind: "tcp", port: ports.late! },
    });
    await h.ledger.release(String(ports.allow));
    const reload = await gw.admin("/reload", "POST");
    assert.equal(reload.status, 200);
    const diff = JSON.parse(reload.text).diff;
    assert.deepEqual(diff.open, [ports.late]);
    assert.deepEqual(diff.close, [ports.allow]);
    const fresh = await roundTrip(await dial(ports.late!), Buffer.from("new route"));
    assert.equal(fresh.toString(), "new route");
    await assert.rejects(dial(ports.allow!), /ECONNREFUSED/);
    // One port opened, one closed: the listening count (kept as ports open and close) is unchanged.
    assert.equal(await gw.metric("gateway_listening_ports", {}), listeningBefore);
    assert.equal(JSON.parse((await gw.admin("/readyz")).text).listening, listeningBefore);
    // SIGHUP reloads too (nothing changed now).
    gw.proc.child.kill("SIGHUP");
    await sleep(300);
    clearInterval(writer);
    const all = Buffer.concat(sent);
    await waitFor(() => Buffer.concat(received).length >= all.length, "long transfer to finish", {
      timeoutMs: 20_000,
    });
    assert.equal(sha(Buffer.concat(received)), sha(all), "the long transfer was not disturbed");
    long.end();
    assert.ok((await gw.metric("gateway_reloads_total", { result: "ok" })) >= 3);
  });

  test("a bad ledger row is skipped and logged; a failed reload keeps the last good table", async () => {
    await h.ledger.client.upsertEntity({ partitionKey: "route", rowKey: "99999", kind: "tcp", port: 99999 });
    const reload = await gw.admin("/reload", "POST");
    assert.equal(reload.status, 200);
    assert.ok(JSON.parse(reload.text).problems.some((p: { rowKey: string }) => p.rowKey === "99999"));
    await waitFor(() => gw.proc.stdout().includes('"event":"bad-row"'), "bad-row log line");
    const again = await roundTrip(await dial(ports.tcp!), Buffer.from("still here"));
    assert.equal(again.toString(), "still here");
  });
});
