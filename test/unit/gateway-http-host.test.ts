import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { HostHeaderParser, MAX_REQUEST_HEAD, parseHostHeader } from "../../cloud/gateway/src/http-host.ts";

test("finds the Host of a request head fed in pieces", () => {
  const p = new HostHeaderParser();
  assert.deepEqual(p.push(Buffer.from("GET /x HTTP/1.1\r\nUser-Agent: t\r\nho")), { done: false });
  assert.deepEqual(p.push(Buffer.from("ST: Shop.Example.com:8080\r\n\r\nbody")), {
    done: true,
    hostname: "shop.example.com",
  });
});

test("host forms: port, IPv6 literal, trailing dot", () => {
  assert.equal(parseHostHeader("a.b:80"), "a.b");
  assert.equal(parseHostHeader("[::1]:80"), "::1");
  assert.equal(parseHostHeader("a.b."), "a.b");
  assert.throws(() => parseHostHeader("a b"), { code: "RF_ERR_HTTP_MALFORMED" });
});

test("no Host, two Hosts, a bad request line and an oversized head are refused", () => {
  assert.throws(() => new HostHeaderParser().push(Buffer.from("GET / HTTP/1.1\r\n\r\n")), {
    code: "RF_ERR_HTTP_MALFORMED",
  });
  assert.throws(
    () => new HostHeaderParser().push(Buffer.from("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")),
    {
      code: "RF_ERR_HTTP_MALFORMED",
    },
  );
  assert.throws(() => new HostHeaderParser().push(Buffer.from("HELLO there\r\n")), {
    code: "RF_ERR_HTTP_MALFORMED",
  });
  const p = new HostHeaderParser();
  p.push(Buffer.from("GET / HTTP/1.1\r\n"));
  assert.throws(() => p.push(Buffer.alloc(MAX_REQUEST_HEAD + 1, 0x61)), {
    code: "RF_ERR_HTTP_TOO_LARGE",
    status: 431,
  });
});

test("random input never throws uncoded (property)", () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 200 }), (s) => {
      try {
        new HostHeaderParser().push(Buffer.from(`GET / HTTP/1.1\r\n${s}`));
      } catch (err) {
        assert.match((err as { code?: string }).code ?? "", /^RF_ERR_HTTP_/);
      }
    }),
  );
});
