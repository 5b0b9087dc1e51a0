import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { connectUrl, listenUrl, parseEndpoint, rejectUrl, tokenAudience } from "../../lib/hyco/urls.ts";

describe("urls", () => {
  it("maps every endpoint form to a WebSocket scheme and authority", () => {
    assert.deepEqual(parseEndpoint("sb://NS.servicebus.windows.net/"), {
      scheme: "wss",
      host: "ns.servicebus.windows.net",
      port: undefined,
      authority: "ns.servicebus.windows.net",
    });
    assert.equal(parseEndpoint("sb://127.0.0.1:9000").authority, "127.0.0.1:9000");
    assert.equal(parseEndpoint("ws://127.0.0.1:9000").scheme, "ws");
    assert.equal(parseEndpoint("wss://h:1").scheme, "wss");
    assert.equal(parseEndpoint("ns.example.net").scheme, "wss");
    assert.throws(() => parseEndpoint("ftp://x"), { code: "RF_ERR_RELAY_ENDPOINT" });
    assert.throws(() => parseEndpoint("::::"), { code: "RF_ERR_RELAY_ENDPOINT" });
  });

  it("builds listen and connect URLs, encoding the entity path per segment", () => {
    assert.equal(
      listenUrl("ws://127.0.0.1:9000", "site-1", { id: "a b" }),
      "ws://127.0.0.1:9000/$hc/site-1?sb-hc-action=listen&sb-hc-id=a%20b",
    );
    assert.equal(connectUrl("sb://ns", "a/b c"), "wss://ns/$hc/a/b%20c?sb-hc-action=connect");
    assert.match(
      connectUrl("sb://ns", "x", { token: "SharedAccessSignature sr=1&sig=2" }),
      /sb-hc-token=Shared/,
    );
  });

  it("appends the reject parameters to the accept address as is", () => {
    const address = "wss://h/$hc/x?sb-hc-action=accept&sb-hc-id=ID";
    assert.equal(
      rejectUrl(address, 403, "not allowed\r\nX: y"),
      `${address}&sb-hc-statusCode=403&sb-hc-statusDescription=not%20allowed%20%20X%3A%20y`,
    );
  });

  it("signs for http://host/hc without the port", () => {
    assert.equal(tokenAudience("ws://127.0.0.1:9000", "site-1"), "http://127.0.0.1/site-1");
  });
});
