import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { hasErrorCode } from "../../lib/errors.ts";
import { encodeAccept, encodeRenewToken, parseControlMessage } from "../../lib/hyco/control-messages.ts";

const address = "wss://g1-prod.example.net:443/$hc/site-1?sb-hc-action=accept&sb-hc-id=abc";

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

describe("control messages", () => {
  it("parses an accept as the relay sends it", () => {
    const msg = parseControlMessage(
      encodeAccept({
        address,
        id: "abc",
        connectHeaders: { "Sec-WebSocket-Key": "k==", Host: "ns:443" },
        remoteEndpoint: { address: "10.0.0.1", port: 1234 },
      }),
    );
    assert.equal(msg.kind, "accept");
    if (msg.kind !== "accept") return;
    assert.equal(msg.accept.address, address);
    assert.equal(msg.accept.id, "abc");
    assert.equal(msg.accept.connectHeaders["Sec-WebSocket-Key"], "k==");
    assert.deepEqual(msg.accept.remoteEndpoint, { address: "10.0.0.1", port: 1234 });
  });

  it("tolerates a missing connectHeaders (hyco-ws crashes on it) and binary frames", () => {
    const msg = parseControlMessage(Buffer.from(JSON.stringify({ accept: { address, id: "x" } })));
    assert.equal(msg.kind, "accept");
    if (msg.kind === "accept") assert.deepEqual(msg.accept.connectHeaders, {});
  });

  it("parses renewToken and request, and round-trips encodeRenewToken", () => {
    const renew = parseControlMessage(encodeRenewToken("SharedAccessSignature sr=a&sig=b&se=1&skn=c"));
    assert.equal(renew.kind, "renewToken");
    const req = parseControlMessage(
      JSON.stringify({
        request: { id: "r1", requestTarget: "/x", method: "GET", requestHeaders: { a: "b" }, body: false },
      }),
    );
    assert.equal(req.kind, "request");
  });

  it("reports unknown actions as unknown, not as errors", () => {
    assert.deepEqual(parseControlMessage('{"frobnicate":{}}'), { kind: "unknown", keys: ["frobnicate"] });
    assert.deepEqual(parseControlMessage("{}"), { kind: "unknown", keys: [] });
  });

  it("gives RF_ERR_RELAY_CONTROL_MALFORMED for garbage and bad shapes", () => {
    for (const bad of [
      "",
      "not json",
      "[]",
      "null",
      "42",
      '"accept"',
      '{"accept":null}',
      '{"accept":{"id":"x"}}',
      '{"accept":{"address":"http://x/","id":"x"}}',
      '{"accept":{"address":"not a url","id":"x"}}',
      `{"accept":{"address":"${address}","id":""}}`,
      `{"accept":{"address":"${address}","id":"x","connectHeaders":{"a":{}}}}`,
      `{"accept":{"address":"${address}","id":"x","remoteEndpoint":{"port":70000}}}`,
      '{"renewToken":{}}',
      '{"request":{"id":"r"}}',
    ]) {
      assert.equal(
        codeOf(() => parseControlMessage(bad)),
        "RF_ERR_RELAY_CONTROL_MALFORMED",
        bad,
      );
    }
  });

  it("never throws an uncoded error, whatever the frame", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.json(),
          fc.jsonValue().map((v) => JSON.stringify({ accept: v })),
        ),
        (s) => {
          try {
            parseControlMessage(s);
          } catch (err) {
            assert.ok(hasErrorCode(err, "RF_ERR_RELAY_CONTROL_MALFORMED"), String(err));
          }
        },
      ),
    );
  });
});
