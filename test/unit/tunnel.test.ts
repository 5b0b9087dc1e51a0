/**
 * lib/hyco/tunnel.ts: openLogicalPort and the Tunnel it returns, against a ws server on loopback
 * that plays the listener's end of the relayed connection (test/helpers/ws-pair.ts).
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import net, { type AddressInfo } from "node:net";
import { describe, it } from "node:test";
import type { WebSocket } from "ws";
import { encodeReplyOk, PreambleParser } from "../../lib/hyco/preamble.ts";
import { openLogicalPort, type StandbySource } from "../../lib/hyco/tunnel.ts";
import { waitFor } from "../helpers/index.ts";
import { startFakeRelay } from "../helpers/ws-pair.ts";

/** A listener end that reads the preamble, then answers with `answer(portName)`. */
function answering(answer: (ws: WebSocket, portName: string) => void): (ws: WebSocket) => void {
  return (ws) => {
    const parser = new PreambleParser();
    const onMessage = (data: Buffer) => {
      const step = parser.push(data);
      if (!step.done) return;
      ws.off("message", onMessage);
      answer(ws, step.value.portName);
    };
    ws.on("message", onMessage);
  };
}

const sender = (endpoint: string) => ({ endpoint, hybridConnection: "hc" });

describe("openLogicalPort", () => {
  it("writes the preamble and holds what the listener sent behind its reply for the tunnel", async (t) => {
    const names: string[] = [];
    const relay = await startFakeRelay(
      t,
      answering((ws, name) => {
        names.push(name);
        ws.send(Buffer.concat([encodeReplyOk(), Buffer.from("banner")]));
        ws.send(Buffer.from(" and more"));
      }),
    );
    const tunnel = await openLogicalPort(sender(relay.endpoint), "ssh");
    assert.deepEqual(names, ["ssh"]);
    assert.equal(tunnel.origin, undefined);
    await new Promise((r) => setTimeout(r, 20)); // the second message is held too, not emitted
    assert.equal(Buffer.concat(tunnel.takeHeld()).toString(), "banner and more");
    assert.deepEqual(tunnel.takeHeld(), []);
    tunnel.ws.close();
  });

  it("rejects a refusal reply and a close before the reply with RF_ERR_TUNNEL_REFUSED", async (t) => {
    const relay = await startFakeRelay(
      t,
      answering((ws, name) => {
        if (name === "datagram") ws.send(Buffer.from([0, 0, 2]));
        else ws.close(1008, "no such logical port");
      }),
    );
    await assert.rejects(openLogicalPort(sender(relay.endpoint), "datagram"), {
      code: "RF_ERR_TUNNEL_REFUSED",
    });
    await assert.rejects(openLogicalPort(sender(relay.endpoint), "unknown"), (err: Error) => {
      assert.equal((err as { code?: string }).code, "RF_ERR_TUNNEL_REFUSED");
      assert.equal((err as { closeCode?: number }).closeCode, 1008);
      return true;
    });
  });

  it("refuses a name the preamble cannot carry before connecting", async (t) => {
    const relay = await startFakeRelay(t);
    await assert.rejects(openLogicalPort(sender(relay.endpoint), "x".repeat(300)));
    assert.equal(relay.accepted.length, 0);
  });

  it("ends the whole setup at one deadline: a silent listener is cut at timeoutMs", async (t) => {
    const relay = await startFakeRelay(t);
    const started = Date.now();
    await assert.rejects(openLogicalPort(sender(relay.endpoint), "ssh", { timeoutMs: 300 }), {
      code: "RF_ERR_PREAMBLE_TIMEOUT",
    });
    const took = Date.now() - started;
    assert.ok(took >= 250 && took < 2_000, `took ${took} ms`);
    await waitFor(() => relay.accepted[0]?.readyState === relay.accepted[0]?.CLOSED, "the connection closed");
  });

  it("gives up when the signal aborts: rejects with its reason and closes the connection", async (t) => {
    const relay = await startFakeRelay(t);
    const controller = new AbortController();
    const opening = openLogicalPort(sender(relay.endpoint), "ssh", { signal: controller.signal });
    await waitFor(() => relay.accepted.length === 1, "the connection");
    const reason = new Error("client left");
    controller.abort(reason);
    await assert.rejects(opening, (err) => err === reason);
    await waitFor(() => relay.accepted[0]?.readyState === relay.accepted[0]?.CLOSED, "the connection closed");
    // Already aborted: not even a connection is made.
    await assert.rejects(openLogicalPort(sender(relay.endpoint), "ssh", { signal: controller.signal }));
    assert.equal(relay.accepted.length, 1);
  });

  it("tells a standby source about an ordinary connection when it had none to give", async (t) => {
    const relay = await startFakeRelay(
      t,
      answering((ws) => ws.send(encodeReplyOk())),
    );
    const ordinary: WebSocket[] = [];
    const source: StandbySource = {
      take: async () => undefined,
      noteOrdinary: (ws) => ordinary.push(ws),
      expectBack: () => {},
      giveBack: () => {},
    };
    const tunnel = await openLogicalPort(sender(relay.endpoint), "ssh", { standby: source });
    assert.deepEqual(ordinary, [tunnel.ws]);
    assert.equal(tunnel.origin, undefined, "an ordinary connection is not given back to the pool");
    tunnel.ws.close();
  });
});

describe("Tunnel.pump", () => {
  it("pumps a standby's stream as reusable and gives the connection back at its clean end", async (t) => {
    // The listener end: answers the preamble, echoes one stream, ends it with an empty message.
    const relay = await startFakeRelay(
      t,
      answering((ws) => {
        ws.send(encodeReplyOk());
        ws.on("message", (data: Buffer) => {
          if (data.length === 0) ws.send(Buffer.alloc(0));
          else ws.send(data);
        });
      }),
    );
    // The standby: a plain open connection to the stand-in, lent by a fake source.
    const { connectSender } = await import("../../lib/hyco/sender.ts");
    const spare = await connectSender(sender(relay.endpoint));
    const events: string[] = [];
    const source: StandbySource = {
      take: async () => spare,
      noteOrdinary: () => events.push("ordinary"),
      expectBack: () => events.push("expectBack"),
      giveBack: (ws, reusable, leftovers) =>
        events.push(`giveBack ${ws === spare} ${reusable} ${leftovers.length}`),
    };
    const tunnel = await openLogicalPort(sender(relay.endpoint), "echo", { standby: source });
    assert.equal(tunnel.origin, source);
    assert.equal(tunnel.ws, spare);
    // A TCP pair stands for the gateway's client connection.
    const server = net.createServer({ allowHalfOpen: true });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    t.after(() => server.close());
    const client = net.connect({ port: (server.address() as AddressInfo).port, allowHalfOpen: true });
    const [socket] = (await once(server, "connection")) as [net.Socket];
    const pump = tunnel.pump(socket);
    const parts: Buffer[] = [];
    client.on("data", (d: Buffer) => parts.push(d));
    client.end("hello");
    await once(client, "end");
    client.destroy();
    const result = await pump.done;
    assert.equal(result.reusable, true);
    assert.equal(Buffer.concat(parts).toString(), "hello");
    await waitFor(() => events.includes("giveBack true true 0"), "the standby given back");
    assert.deepEqual(events, ["expectBack", "giveBack true true 0"]);
    spare.close();
  });
});
