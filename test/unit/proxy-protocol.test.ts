import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  encodeProxyV2,
  PROXY_V2_SIGNATURE,
  ProxyHeaderParser,
  parseProxyV2,
} from "../../lib/proxy-protocol/index.ts";

test("encodes a TCP4 header byte-exact with the spec layout", () => {
  const h = encodeProxyV2({
    sourceAddress: "192.0.2.10",
    sourcePort: 51000,
    destinationAddress: "198.51.100.1",
    destinationPort: 443,
  });
  assert.deepEqual(
    h,
    Buffer.concat([
      PROXY_V2_SIGNATURE,
      Buffer.from([0x21, 0x11, 0x00, 0x0c, 192, 0, 2, 10, 198, 51, 100, 1, 0xc7, 0x38, 0x01, 0xbb]),
    ]),
  );
});

test("an IPv4-mapped IPv6 client on a dual-stack socket is sent as TCP4", () => {
  const h = encodeProxyV2({
    sourceAddress: "::ffff:10.1.2.3",
    sourcePort: 1,
    destinationAddress: "::ffff:127.0.0.1",
    destinationPort: 2,
  });
  const { header } = parseProxyV2(h);
  assert.equal(header.family, "TCP4");
  assert.equal(header.command === "PROXY" && header.family === "TCP4" && header.sourceAddress, "10.1.2.3");
});

test("round-trips TCP6 and mixed families as TCP6", () => {
  const h = encodeProxyV2({
    sourceAddress: "2001:db8::7",
    sourcePort: 65535,
    destinationAddress: "10.0.0.1",
    destinationPort: 0,
  });
  assert.equal(h.length, 16 + 36);
  const { header, rest } = parseProxyV2(Buffer.concat([h, Buffer.from("hello")]));
  assert.equal(rest.toString(), "hello");
  assert.ok(header.family === "TCP6");
  assert.equal(header.sourceAddress, "2001:db8::7");
  assert.equal(header.destinationAddress, "::ffff:a00:1");
  assert.equal(header.sourcePort, 65535);
});

test("LOCAL has no addresses", () => {
  const { header } = parseProxyV2(encodeProxyV2());
  assert.equal(header.command, "LOCAL");
  assert.equal(header.family, "UNSPEC");
  assert.equal(header.length, 16);
});

test("rejects a non-IP address", () => {
  assert.throws(
    () =>
      encodeProxyV2({
        sourceAddress: "host",
        sourcePort: 1,
        destinationAddress: "1.1.1.1",
        destinationPort: 1,
      }),
    { code: "RF_ERR_PROXY_ADDRESS" },
  );
});

test("fails on the first byte that is not the signature, without waiting for more", () => {
  const p = new ProxyHeaderParser();
  assert.deepEqual(p.push(Buffer.from([0x0d, 0x0a])), { done: false });
  assert.throws(() => p.push(Buffer.from("GET")), { code: "RF_ERR_PROXY_SIGNATURE" });
  assert.throws(() => new ProxyHeaderParser().push(Buffer.from("PROXY TCP4 ")), {
    code: "RF_ERR_PROXY_SIGNATURE",
  });
});

test("rejects version 1 binary, unknown commands, over-long and truncated headers", () => {
  const base = encodeProxyV2({
    sourceAddress: "1.2.3.4",
    sourcePort: 1,
    destinationAddress: "5.6.7.8",
    destinationPort: 2,
  });
  const v1 = Buffer.from(base);
  v1[12] = 0x11;
  assert.throws(() => parseProxyV2(v1), { code: "RF_ERR_PROXY_VERSION" });
  const cmd = Buffer.from(base);
  cmd[12] = 0x2f;
  assert.throws(() => parseProxyV2(cmd), { code: "RF_ERR_PROXY_COMMAND" });
  const long = Buffer.from(base);
  long.writeUInt16BE(5000, 14);
  assert.throws(() => new ProxyHeaderParser().push(long), { code: "RF_ERR_PROXY_TOO_LONG" });
  const short = Buffer.from(base.subarray(0, 20));
  short.writeUInt16BE(4, 14);
  assert.throws(() => parseProxyV2(short), { code: "RF_ERR_PROXY_TRUNCATED" });
  assert.throws(() => parseProxyV2(base.subarray(0, 10)), { code: "RF_ERR_PROXY_TRUNCATED" });
});

test("any byte split parses to the same header and rest (property)", () => {
  fc.assert(
    fc.property(
      fc.ipV4(),
      fc.ipV6(),
      fc.integer({ min: 0, max: 65535 }),
      fc.boolean(),
      fc.uint8Array({ maxLength: 40 }),
      fc.array(fc.integer({ min: 1, max: 8 }), { minLength: 1, maxLength: 20 }),
      (v4, v6, port, useV6, tail, cuts) => {
        const src = useV6 ? v6 : v4;
        const wire = Buffer.concat([
          encodeProxyV2({
            sourceAddress: src,
            sourcePort: port,
            destinationAddress: v4,
            destinationPort: 443,
          }),
          Buffer.from(tail),
        ]);
        const whole = parseProxyV2(wire);
        const p = new ProxyHeaderParser();
        let offset = 0;
        let i = 0;
        for (;;) {
          const n = cuts[i++ % cuts.length]!;
          const step = p.push(wire.subarray(offset, offset + n));
          offset += n;
          if (step.done) {
            const rest = Buffer.concat([step.rest, wire.subarray(offset)]);
            assert.deepEqual(step.header, whole.header);
            assert.deepEqual(rest, Buffer.from(tail));
            break;
          }
          assert.ok(offset < wire.length, "parser must finish once the header is in");
        }
      },
    ),
  );
});

test("random bytes never throw anything but a coded error (property)", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), fc.boolean(), (bytes, withSig) => {
      const input = withSig ? Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from(bytes)]) : Buffer.from(bytes);
      try {
        new ProxyHeaderParser().push(input);
      } catch (err) {
        assert.match((err as { code?: string }).code ?? "", /^RF_ERR_PROXY_/);
      }
    }),
  );
});
