/**
 * cloud/gateway/src/first-bytes.ts: on a shared port, the gateway reads a client's first bytes
 * until it knows the name the client wants (TLS SNI or HTTP Host), keeps every byte for replay,
 * and fails with a code and the protocol so the caller can answer the client in its own terms.
 * Real loopback sockets; the client side writes the bytes.
 */
import assert from "node:assert/strict";
import { createServer, connect as netConnect, type Socket } from "node:net";
import { type TestContext, test } from "node:test";
import { connect as tlsConnect } from "node:tls";
import { FirstBytesError, readFirstBytes } from "../../cloud/gateway/src/first-bytes.ts";

/** A connected pair: `server` is what the gateway accepted, `client` writes to it. */
async function socketPair(t: TestContext): Promise<{ server: Socket; client: Socket; port: number }> {
  const accepted: Socket[] = [];
  const server = createServer((s) => accepted.push(s));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  const client = netConnect(port, "127.0.0.1");
  client.on("error", () => {});
  await new Promise<void>((r) => client.once("connect", () => r()));
  while (accepted.length === 0) await new Promise((r) => setImmediate(r));
  const s = accepted[0]!;
  s.on("error", () => {});
  t.after(() => {
    client.destroy();
    s.destroy();
    server.close();
  });
  return { server: s, client, port };
}

async function rejection(p: Promise<unknown>): Promise<FirstBytesError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof FirstBytesError, `not a FirstBytesError: ${String(err)}`);
    return err;
  }
  assert.fail("expected a rejection");
}

test("reads the SNI of a real TLS ClientHello and keeps its bytes for replay", async (t) => {
  const accepted: Socket[] = [];
  const server = createServer((s) => accepted.push(s));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  const tls = tlsConnect({ port, host: "127.0.0.1", servername: "App.Example.com" });
  tls.on("error", () => {});
  t.after(() => {
    tls.destroy();
    for (const s of accepted) s.destroy();
    server.close();
  });
  while (accepted.length === 0) await new Promise((r) => setImmediate(r));
  const socket = accepted[0]!;
  socket.on("error", () => {});
  const first = await readFirstBytes(socket, 5_000);
  assert.equal(first.protocol, "tls");
  assert.ok(first.protocol === "tls");
  assert.equal(first.serverName, "app.example.com");
  const bytes = Buffer.concat(first.bytes);
  assert.equal(bytes[0], 0x16, "the replay starts with the handshake record");
  // Left paused, with no data listener of its own: the tunnel takes the socket from here.
  assert.equal(socket.isPaused(), true);
  assert.equal(socket.listenerCount("data"), 0);
});

test("reads the Host of an HTTP request head that arrives in pieces, every byte kept", async (t) => {
  const { server, client } = await socketPair(t);
  const head = "GET /x HTTP/1.1\r\nHost: Shop.Example.com:8080\r\nAccept: */*\r\n\r\nbody-after-head";
  const reading = readFirstBytes(server, 5_000);
  for (const piece of [head.slice(0, 5), head.slice(5, 30), head.slice(30)]) {
    client.write(piece);
    await new Promise((r) => setTimeout(r, 20));
  }
  const first = await reading;
  assert.equal(first.protocol, "http");
  assert.ok(first.protocol === "http");
  assert.equal(first.hostname, "shop.example.com");
  assert.equal(Buffer.concat(first.bytes).toString("latin1"), head);
});

test("rejects first bytes that are neither TLS nor HTTP with RF_ERR_GATEWAY_UNKNOWN_PROTOCOL", async (t) => {
  const { server, client } = await socketPair(t);
  const reading = readFirstBytes(server, 5_000);
  client.write(Buffer.from([0x00, 0x01, 0x02]));
  const err = await rejection(reading);
  assert.equal(err.code, "RF_ERR_GATEWAY_UNKNOWN_PROTOCOL");
  assert.equal(err.protocol, "unknown");
});

test("a malformed request head fails as HTTP with its parser's code and status", async (t) => {
  const { server, client } = await socketPair(t);
  const reading = readFirstBytes(server, 5_000);
  client.write("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n");
  const err = await rejection(reading);
  assert.equal(err.code, "RF_ERR_HTTP_MALFORMED");
  assert.equal(err.protocol, "http");
  assert.equal(err.status, 400);
});

test("a client that names nothing in time fails with RF_ERR_GATEWAY_FIRST_BYTES_TIMEOUT (408)", async (t) => {
  const { server, client } = await socketPair(t);
  const reading = readFirstBytes(server, 200);
  client.write("GET / HTTP/1.1\r\n");
  const err = await rejection(reading);
  assert.equal(err.code, "RF_ERR_GATEWAY_FIRST_BYTES_TIMEOUT");
  assert.equal(err.protocol, "http", "the protocol seen so far, so the caller can answer with 408");
  assert.equal(err.status, 408);
  assert.equal(server.listenerCount("data"), 0);
});

test("a client that leaves half-way through a ClientHello fails with RF_ERR_GATEWAY_CLIENT_GONE", async (t) => {
  const { server, client } = await socketPair(t);
  const reading = readFirstBytes(server, 5_000);
  // A handshake record header announcing 512 bytes, then the end.
  client.end(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]));
  const err = await rejection(reading);
  assert.equal(err.code, "RF_ERR_GATEWAY_CLIENT_GONE");
  assert.equal(err.protocol, "tls");
});
