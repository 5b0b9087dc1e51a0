/**
 * lib/hyco/sender.ts: connectSender against a ws server on loopback standing in for the relay
 * (test/helpers/ws-pair.ts), and an HTTP server that answers the upgrade with the relay's statuses.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { describe, it } from "node:test";
import { parseSasToken } from "../../lib/hyco/sas.ts";
import { cachedToken, connectSender, errorForStatus, zeroMask } from "../../lib/hyco/sender.ts";
import { waitFor } from "../helpers/index.ts";
import { startFakeRelay } from "../helpers/ws-pair.ts";

/** An HTTP server that answers every upgrade with `status` (or holds it when `hold`). */
async function answeringStatus(
  t: { after(fn: () => unknown): void },
  status: number,
  hold = false,
): Promise<{ endpoint: string; sockets: Socket[] }> {
  const sockets: Socket[] = [];
  const server = createServer();
  server.on("upgrade", (_req, socket: Socket) => {
    sockets.push(socket);
    socket.on("error", () => {});
    if (!hold)
      socket.end(`HTTP/1.1 ${status} Relay says no\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return { endpoint: `ws://127.0.0.1:${(server.address() as AddressInfo).port}`, sockets };
}

describe("connectSender", () => {
  it("connects with sb-hc-action=connect and a Send token for the hybrid connection", async (t) => {
    const relay = await startFakeRelay(t);
    const ws = await connectSender({
      endpoint: relay.endpoint,
      hybridConnection: "site-a",
      keyName: "send",
      key: "c2VjcmV0",
    });
    ws.close();
    const [request] = relay.requests;
    assert.match(request?.url ?? "", /^\/\$hc\/site-a\?.*sb-hc-action=connect/);
    const token = parseSasToken(request?.authorization ?? "");
    assert.equal(token.keyName, "send");
  });

  it("maps the relay's answers to coded errors", async (t) => {
    const cases: Array<[number, string]> = [
      [404, "RF_ERR_RELAY_NO_LISTENER"],
      [401, "RF_ERR_RELAY_UNAUTHORIZED"],
      [403, "RF_ERR_RELAY_FORBIDDEN"],
      [503, "RF_ERR_RELAY_REJECTED"],
    ];
    for (const [status, code] of cases) {
      const relay = await answeringStatus(t, status);
      await assert.rejects(connectSender({ endpoint: relay.endpoint, hybridConnection: "hc" }), { code });
      assert.equal(errorForStatus(status, "x", "test").code, code);
    }
  });

  it("fails without asking the relay when the Entra ID token is missing", async (t) => {
    const relay = await startFakeRelay(t);
    await assert.rejects(
      connectSender({ endpoint: relay.endpoint, hybridConnection: "hc", bearerToken: () => undefined }),
      { code: "RF_ERR_RELAY_UNAUTHORIZED" },
    );
    assert.equal(relay.requests.length, 0);
  });

  it("times out a relay that holds the upgrade, and drops it when the signal aborts first", async (t) => {
    const relay = await answeringStatus(t, 0, true);
    await assert.rejects(
      connectSender({ endpoint: relay.endpoint, hybridConnection: "hc", timeoutMs: 200 }),
      {
        code: "RF_ERR_RELAY_TIMEOUT",
      },
    );
    const controller = new AbortController();
    const connecting = connectSender({ endpoint: relay.endpoint, hybridConnection: "hc" }, controller.signal);
    await waitFor(() => relay.sockets.length === 2, "the second upgrade");
    const reason = new Error("client left");
    controller.abort(reason);
    await assert.rejects(connecting, (err) => err === reason);
    await waitFor(
      () => relay.sockets[1]?.destroyed === true || relay.sockets[1]?.readableEnded === true,
      "the dropped upgrade",
    );
    await assert.rejects(
      connectSender({ endpoint: relay.endpoint, hybridConnection: "hc" }, controller.signal),
      (err) => err === reason,
    );
    assert.equal(relay.sockets.length, 2, "an aborted signal makes no connection");
  });
});

describe("cachedToken", () => {
  it("reuses a token for the same audience and key, and signs anew for another key", () => {
    const a = cachedToken("sb://ns.example", "hc", "send", "a2V5LTE=");
    assert.equal(cachedToken("sb://ns.example", "hc", "send", "a2V5LTE="), a);
    assert.notEqual(cachedToken("sb://ns.example", "hc", "send", "a2V5LTI="), a);
  });
});

describe("zeroMask", () => {
  it("fills ws's mask with zeros so ws skips masking", () => {
    const mask = new Uint8Array([1, 2, 3, 4]);
    zeroMask(mask);
    assert.deepEqual([...mask], [0, 0, 0, 0]);
  });
});
