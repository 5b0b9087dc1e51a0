import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { hasErrorCode } from "../../lib/errors.ts";
import {
  decodeReply,
  encodePreamble,
  encodeReplyError,
  encodeReplyOk,
  MODE_DATAGRAM,
  MODE_STREAM,
  type PreambleMode,
  PreambleParser,
  ReplyParser,
} from "../../lib/hyco/preamble.ts";

/** Splits `buf` at the given cut points (sorted, deduplicated, within bounds). */
function splitAt(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  out.push(buf.subarray(prev));
  return out;
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

describe("preamble", () => {
  it("encodes azbridge's exact bytes", () => {
    assert.deepEqual([...encodePreamble("rdp")], [1, 0, 0, 3, 0x72, 0x64, 0x70]);
    assert.deepEqual([...encodePreamble("3389", MODE_DATAGRAM)], [1, 0, 1, 4, 0x33, 0x33, 0x38, 0x39]);
    assert.deepEqual([...encodeReplyOk()], [1, 0, 0]);
    assert.deepEqual([...encodeReplyOk(MODE_DATAGRAM)], [1, 0, 1]);
    assert.deepEqual([...encodeReplyError("unsupported-version")], [0, 0, 0]);
    assert.deepEqual([...encodeReplyError("stream-unsupported")], [0, 0, 1]);
    assert.deepEqual([...encodeReplyError("datagram-unsupported")], [0, 0, 255]);
  });

  it("refuses empty and over-long port names when encoding", () => {
    assert.equal(
      codeOf(() => encodePreamble("")),
      "RF_ERR_PREAMBLE_NAME",
    );
    assert.equal(
      codeOf(() => encodePreamble("x".repeat(256))),
      "RF_ERR_PREAMBLE_NAME",
    );
    assert.equal(encodePreamble("é".repeat(127)).length, 4 + 254);
  });

  it("parses whatever the byte split and returns the bytes that follow", () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 60 }),
        fc.constantFrom<PreambleMode>(MODE_STREAM, MODE_DATAGRAM),
        fc.uint8Array({ maxLength: 40 }),
        fc.array(fc.nat(200), { maxLength: 8 }),
        (name, mode, trailer, cuts) => {
          const wire = Buffer.concat([encodePreamble(name, mode), Buffer.from(trailer)]);
          const parser = new PreambleParser();
          let result: { portName: string; mode: number; rest: Buffer } | undefined;
          const restParts: Buffer[] = [];
          for (const part of splitAt(wire, cuts)) {
            if (result) {
              restParts.push(part);
              continue;
            }
            const step = parser.push(part);
            if (step.done) result = { ...step.value, rest: step.rest };
          }
          assert.ok(result, "parser finished");
          assert.equal(result.portName, name);
          assert.equal(result.mode, mode);
          assert.deepEqual(Buffer.concat([result.rest, ...restParts]), Buffer.from(trailer));
        },
      ),
    );
  });

  it("waits for more bytes on every proper prefix", () => {
    const wire = encodePreamble("mapping_1");
    for (let i = 0; i < wire.length; i++) {
      assert.equal(new PreambleParser().push(wire.subarray(0, i)).done, false);
    }
  });

  it("rejects a bad version as soon as its byte arrives, with a stable code", () => {
    assert.equal(
      codeOf(() => new PreambleParser().push(Buffer.from([2]))),
      "RF_ERR_PREAMBLE_VERSION",
    );
    assert.equal(
      codeOf(() => new PreambleParser().push(Buffer.from([1, 1]))),
      "RF_ERR_PREAMBLE_VERSION",
    );
    assert.equal(
      codeOf(() => new PreambleParser().push(Buffer.from("GET / HTTP/1.1\r\n"))),
      "RF_ERR_PREAMBLE_VERSION",
    );
    assert.equal(
      codeOf(() => new PreambleParser().push(Buffer.from([1, 0, 7, 1, 65]))),
      "RF_ERR_PREAMBLE_MODE",
    );
    assert.equal(
      codeOf(() => new PreambleParser().push(Buffer.from([1, 0, 0, 2, 0xc3, 0x28]))),
      "RF_ERR_PREAMBLE_NAME",
    );
  });

  it("never throws anything but a coded error on arbitrary input", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 5 }), (chunks) => {
        const parser = new PreambleParser();
        try {
          for (const c of chunks) if (parser.push(Buffer.from(c)).done) break;
        } catch (err) {
          assert.ok(
            hasErrorCode(err, "RF_ERR_PREAMBLE_VERSION") ||
              hasErrorCode(err, "RF_ERR_PREAMBLE_MODE") ||
              hasErrorCode(err, "RF_ERR_PREAMBLE_NAME"),
            String(err),
          );
        }
      }),
    );
  });

  it("parses replies under any split and decodes every azbridge answer", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 3, maxLength: 20 }), fc.array(fc.nat(30)), (bytes, cuts) => {
        const wire = Buffer.from(bytes);
        const parser = new ReplyParser();
        for (const part of splitAt(wire, cuts)) {
          const step = parser.push(part);
          if (step.done) {
            assert.deepEqual(step.value, decodeReply(wire.subarray(0, 3)));
            return;
          }
        }
        assert.fail("reply never completed");
      }),
    );
    assert.deepEqual(decodeReply(Buffer.from([1, 0, 0])), { ok: true, mode: 0 });
    assert.deepEqual(decodeReply(Buffer.from([0, 0, 0])), { ok: false, reason: "unsupported-version" });
    assert.deepEqual(decodeReply(Buffer.from([0, 0, 1])), { ok: false, reason: "stream-unsupported" });
    assert.deepEqual(decodeReply(Buffer.from([0, 0, 255])), { ok: false, reason: "datagram-unsupported" });
    assert.deepEqual(decodeReply(Buffer.from([9, 9, 9])), { ok: false, reason: "unknown" });
  });

  it("refuses to be fed after it finished", () => {
    const parser = new PreambleParser();
    assert.equal(parser.push(encodePreamble("a")).done, true);
    assert.equal(
      codeOf(() => parser.push(Buffer.from([1]))),
      "RF_ERR_PREAMBLE_STATE",
    );
  });
});
