import assert from "node:assert/strict";
import { createServer } from "node:net";
import { test } from "node:test";
import { connect } from "node:tls";
import fc from "fast-check";
import { ClientHelloParser, MAX_CLIENT_HELLO, parseClientHelloBody } from "../../cloud/gateway/src/sni.ts";

/** Builds a ClientHello record with the given SNI names and extra extensions. */
function clientHello(names: string[], opts: { extra?: Buffer; recordSplit?: number } = {}): Buffer {
  const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
  const sniList = Buffer.concat(
    names.map((n) => Buffer.concat([Buffer.from([0]), u16(n.length), Buffer.from(n, "latin1")])),
  );
  const sniExt = names.length
    ? Buffer.concat([u16(0), u16(sniList.length + 2), u16(sniList.length), sniList])
    : Buffer.alloc(0);
  const exts = Buffer.concat([sniExt, opts.extra ?? Buffer.alloc(0)]);
  const body = Buffer.concat([
    Buffer.from([3, 3]),
    Buffer.alloc(32, 7),
    Buffer.from([0]),
    u16(2),
    Buffer.from([0x13, 0x01]),
    Buffer.from([1, 0]),
    u16(exts.length),
    exts,
  ]);
  const hs = Buffer.concat([Buffer.from([1, 0, body.length >> 8, body.length & 0xff]), body]);
  const split = opts.recordSplit ?? hs.length;
  const records: Buffer[] = [];
  for (let i = 0; i < hs.length; i += split) {
    const frag = hs.subarray(i, i + split);
    records.push(Buffer.concat([Buffer.from([0x16, 3, 1]), u16(frag.length), frag]));
  }
  return Buffer.concat(records);
}

function parseAll(bytes: Buffer, cuts: number[] = [bytes.length]) {
  const p = new ClientHelloParser();
  let off = 0;
  let i = 0;
  while (off < bytes.length) {
    const n = Math.max(1, cuts[i++ % cuts.length]!);
    const step = p.push(bytes.subarray(off, off + n));
    off += n;
    if (step.done) return step;
  }
  return { done: false as const };
}

test("reads the SNI of a real Node TLS ClientHello", async (t) => {
  const captured = await new Promise<Buffer>((resolve) => {
    const server = createServer((s) => {
      s.once("data", (d: Buffer) => {
        resolve(d);
        s.destroy();
      });
    });
    t.after(() => server.close());
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      const c = connect({ port, host: "127.0.0.1", servername: "App.Example.COM", ALPNProtocols: ["h2"] });
      c.on("error", () => {});
    });
  });
  const step = parseAll(captured);
  assert.deepEqual(step, { done: true, serverName: "app.example.com" });
  // The same bytes fed one at a time give the same answer.
  assert.deepEqual(parseAll(captured, [1]), { done: true, serverName: "app.example.com" });
});

test("reassembles a ClientHello split over several records", () => {
  assert.deepEqual(parseAll(clientHello(["a.example.com"], { recordSplit: 7 })), {
    done: true,
    serverName: "a.example.com",
  });
});

test("no server_name extension means no name, not an error", () => {
  assert.deepEqual(parseAll(clientHello([])), { done: true, serverName: undefined });
});

test("refuses non-TLS first bytes at once", () => {
  assert.throws(() => new ClientHelloParser().push(Buffer.from("GET / HTTP/1.1\r\n")), {
    code: "RF_ERR_SNI_NOT_TLS",
  });
  assert.throws(() => new ClientHelloParser().push(Buffer.from([0x80, 0x2e, 0x01])), {
    code: "RF_ERR_SNI_NOT_TLS",
  });
});

test("refuses a bad host name, a wrong handshake type and an oversized hello", () => {
  assert.throws(() => parseAll(clientHello(["bad name!"])), { code: "RF_ERR_SNI_MALFORMED" });
  const notHello = clientHello(["a.b"]);
  notHello[5] = 2;
  assert.throws(() => parseAll(notHello), { code: "RF_ERR_SNI_MALFORMED" });
  const huge = Buffer.from([0x16, 3, 1, 0, 4, 1, 0xff, 0xff, 0xff]);
  assert.throws(() => parseAll(huge), { code: "RF_ERR_SNI_TOO_LARGE" });
  assert.ok(MAX_CLIENT_HELLO >= 4096);
});

test("a truncated body is a coded error, not a RangeError", () => {
  const body = clientHello(["a.example.com"]).subarray(9);
  for (let n = 0; n < body.length; n++) {
    try {
      parseClientHelloBody(body.subarray(0, n));
    } catch (err) {
      assert.equal((err as { code?: string }).code, "RF_ERR_SNI_MALFORMED", `cut at ${n}`);
    }
  }
});

test("any byte split of a valid hello gives the same name (property)", () => {
  fc.assert(
    fc.property(
      fc.domain(),
      fc.integer({ min: 1, max: 60 }),
      fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 10 }),
      (name, split, cuts) => {
        const bytes = clientHello([name], { recordSplit: split });
        assert.deepEqual(parseAll(bytes, cuts), { done: true, serverName: name.toLowerCase() });
      },
    ),
  );
});

test("random and mutated input never throws uncoded, never hangs past the bound (property)", () => {
  const valid = clientHello(["x.example.org"], { extra: Buffer.from([0, 16, 0, 5, 0, 3, 2, 0x68, 0x32]) });
  fc.assert(
    fc.property(
      fc.oneof(
        fc
          .uint8Array({ maxLength: 300 })
          .map((b) => Buffer.concat([Buffer.from([0x16, 3, 1]), Buffer.from(b)])),
        fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
        fc
          .array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 8 })
          .map((muts) => {
            const b = Buffer.from(valid);
            for (const [i, v] of muts) b[i] = v;
            return b;
          }),
        fc.nat(valid.length).map((n) => valid.subarray(0, n)),
      ),
      fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 5 }),
      (input, cuts) => {
        try {
          const step = parseAll(input, cuts);
          if (step.done && step.serverName !== undefined) assert.match(step.serverName, /^[a-z0-9_.-]+$/);
        } catch (err) {
          assert.match((err as { code?: string }).code ?? String(err), /^RF_ERR_SNI_/);
        }
      },
    ),
    { numRuns: 2000 },
  );
});
