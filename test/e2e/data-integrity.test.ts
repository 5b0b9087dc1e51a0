/**
 * Issue 7, data integrity and half-close, through every real part over loopback:
 * client → gateway (public port) → relay emulator (wss) → relayListener module → the site's echo /
 * web service. 256 MiB each way at once with SHA-256 equal; 200 concurrent connections of mixed
 * sizes all byte-exact; a client that half-closes still gets the whole answer.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { Fleet } from "../../sim/fleet.ts";
import { sumMetric } from "../../sim/live-status.ts";
import {
  connectTcp,
  echoExact,
  fileScope,
  keystream,
  sha256,
  siteServes,
  startE2eFleet,
  startEchoTransfer,
} from "../helpers/e2e.ts";
import { waitFor } from "../helpers/index.ts";

const MiB = 1024 * 1024;
const scope = fileScope(after);
let fleet: Fleet;
let echoPort: number;
let webPort: number;

before(async () => {
  // maxConnections 0: the 200-connection test must not meet the default per-mapping cap of 100;
  // maxConnectionsPerSource 0: nor the gateway's default of 10 per client address (all are 127.0.0.1).
  fleet = await startE2eFleet(scope, { sites: 1 });
  await fleet.api("PUT", "/api/sites/plant-1/mappings/echo", {
    target: `127.0.0.1:${fleet.sites.get("plant-1")?.services?.echoPort}`,
    maxConnections: 0,
    maxConnectionsPerSource: 0,
  });
  await fleet.reloadGateways();
  const site = fleet.sites.get("plant-1");
  assert.ok(site);
  echoPort = site.publicPorts.echo as number;
  webPort = site.publicPorts.web as number;
  await waitFor(() => siteServes(webPort, "plant-1"), "plant-1 web page through the gateway", {
    timeoutMs: 20_000,
  });
});

async function moduleBytes(): Promise<{ in: number; out: number }> {
  const port = fleet.sites.get("plant-1")?.modules[0]?.healthPort;
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const f = (d: string) => (l: string) => l.includes('mapping="echo"') && l.includes(`direction="${d}"`);
  return {
    in: sumMetric(text, "relay_listener_bytes_total", f("in")),
    out: sumMetric(text, "relay_listener_bytes_total", f("out")),
  };
}

test("256 MiB each way at once through gateway, relay and module: SHA-256 equal both ways", async () => {
  const before = await moduleBytes();
  const total = 256 * MiB;
  const transfer = await startEchoTransfer(echoPort, { totalBytes: total, chunkBytes: MiB });
  const result = await transfer.done;
  assert.equal(result.ending, "end", "the echo ended with a FIN after every byte");
  assert.equal(result.sentBytes, total);
  assert.equal(result.receivedBytes, total);
  assert.equal(result.receivedSha, result.sentSha);
  // The bytes really went through the module (not some shortcut): its counters saw them.
  const now = await waitFor(async () => {
    const b = await moduleBytes();
    return b.in - before.in >= total && b.out - before.out >= total ? b : undefined;
  }, "the module's byte counters to include the transfer");
  assert.ok(now.in - before.in >= total);
});

test("200 concurrent connections of mixed sizes (1 B … 4 MiB) are all byte-exact", async () => {
  const n = 200;
  // Log-spaced sizes from 1 B to 4 MiB (about 54 MiB in all), in a shuffled order.
  const sizes = Array.from({ length: n }, (_, i) => Math.round((4 * MiB) ** (i / (n - 1))));
  const next = keystream();
  const payloads = sizes.map((size) => next(size)).sort(() => Math.random() - 0.5);
  const results = await Promise.allSettled(payloads.map((p) => echoExact(echoPort, p, "127.0.0.1", 120_000)));
  const failures: string[] = [];
  results.forEach((r, i) => {
    const sent = payloads[i] as Buffer;
    if (r.status === "rejected") failures.push(`${sent.length} B: ${String(r.reason)}`);
    else if (r.value.length !== sent.length || sha256(r.value) !== sha256(sent))
      failures.push(`${sent.length} B: got ${r.value.length} B with different content`);
  });
  assert.deepEqual(failures, [], `${failures.length} of ${n} connections failed`);
  assert.equal(Math.min(...sizes), 1);
  assert.equal(Math.max(...sizes), 4 * MiB);
});

test("half-close: a client that ends its write side still gets the full response", async (t) => {
  await t.test("echo: 3 MiB sent then FIN; all 3 MiB come back, then the FIN", async () => {
    const data = keystream()(3 * MiB);
    const socket = await connectTcp(echoPort);
    const chunks: Buffer[] = [];
    socket.on("data", (c: Buffer) => chunks.push(c));
    const ended = new Promise<string>((resolve) => {
      socket.once("end", () => resolve("end"));
      socket.once("error", (err) => resolve(`error: ${err.message}`));
      socket.once("close", () => resolve("close without end"));
    });
    // Everything written and the write side shut before a single byte of the answer is read.
    socket.end(data);
    assert.equal(await ended, "end");
    const got = Buffer.concat(chunks);
    assert.equal(got.length, data.length);
    assert.equal(sha256(got), sha256(data));
    socket.destroy();
  });

  await t.test("web: an HTTP request followed by FIN still gets the whole page", async () => {
    const socket = await connectTcp(webPort);
    let text = "";
    socket.setEncoding("utf8").on("data", (c: string) => {
      text += c;
    });
    const ended = new Promise<string>((resolve) => {
      socket.once("end", () => resolve("end"));
      socket.once("error", (err) => resolve(`error: ${err.message}`));
    });
    socket.end("GET / HTTP/1.1\r\nHost: plant-1\r\nConnection: close\r\n\r\n");
    assert.equal(await ended, "end");
    assert.match(text, /^HTTP\/1\.1 200 OK/);
    assert.match(text, /Hello from site plant-1/);
    // Chunked encoding: the terminating zero-length chunk proves the page arrived to its last byte.
    assert.match(text, /<\/html>\n\r\n0\r\n\r\n$/);
    socket.destroy();
  });
});
