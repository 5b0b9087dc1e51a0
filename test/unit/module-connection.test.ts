/**
 * modules/relayListener/src/connection.ts: one relayed connection on the listener side, served
 * over a loopback WebSocket pair (the sender's end made with lib/hyco's connectSender against a
 * ws server standing in for the relay) to a TCP echo target.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import net, { type AddressInfo } from "node:net";
import { describe, it, type TestContext } from "node:test";
import type { WebSocket } from "ws";
import type { AuditRecord } from "../../lib/audit/index.ts";
import { encodePreamble } from "../../lib/hyco/preamble.ts";
import { connectSender } from "../../lib/hyco/sender.ts";
import { createLogger } from "../../lib/log.ts";
import { MappingSchema } from "../../lib/twin/schema.ts";
import { allowlistFrom } from "../../modules/relayListener/src/allowlist.ts";
import { type ConnectionContext, serveConnection } from "../../modules/relayListener/src/connection.ts";
import { MappingRuntime } from "../../modules/relayListener/src/mapping-runtime.ts";
import { waitFor } from "../helpers/index.ts";
import { startFakeRelay } from "../helpers/ws-pair.ts";

async function echoTarget(t: TestContext): Promise<number> {
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on("error", () => {});
    s.pipe(s);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  t.after(() => server.close());
  return (server.address() as AddressInfo).port;
}

/** The module's context with one mapping `echo` (limit `maxConnections`) and an audit trail. */
async function rig(t: TestContext, maxConnections = 0) {
  const port = await echoTarget(t);
  const mapping = new MappingRuntime(
    "echo",
    MappingSchema.parse({ target: `127.0.0.1:${port}`, maxConnections }),
  );
  const audits: AuditRecord[] = [];
  const outcomes: string[] = [];
  const ctx: ConnectionContext = {
    findMapping: (name) => (name === "echo" ? mapping : undefined),
    allowlist: allowlistFrom("127.0.0.0/8:*\n"),
    logger: createLogger("test", { level: "silent" }),
    preambleTimeoutMs: 2_000,
    keepAliveMs: 30_000,
    changed: () => {},
    onOutcome: (_mapping, outcome) => outcomes.push(outcome),
    onTunnelEnd: (record) => audits.push(record),
  };
  const served: Promise<void>[] = [];
  const relay = await startFakeRelay(t, (ws) => served.push(serveConnection(ws, ctx)));
  const sender = async (): Promise<WebSocket> => {
    const ws = await connectSender({ endpoint: relay.endpoint, hybridConnection: "site" });
    t.after(() => ws.terminate());
    return ws;
  };
  return { mapping, audits, outcomes, served, sender };
}

describe("serveConnection", () => {
  it("answers [1,0,0], pumps to the mapping's target and audits the stream with its bytes", async (t) => {
    const { audits, outcomes, served, sender, mapping } = await rig(t);
    const ws = await sender();
    const parts: Buffer[] = [];
    ws.on("message", (d: Buffer) => parts.push(d));
    ws.send(Buffer.concat([encodePreamble("echo"), Buffer.from("hello")]));
    await waitFor(() => Buffer.concat(parts).length >= 8, "reply and echo");
    assert.deepEqual([...Buffer.concat(parts).subarray(0, 3)], [1, 0, 0]);
    assert.equal(Buffer.concat(parts).subarray(3).toString(), "hello");
    ws.close(1000);
    await Promise.all(served);
    assert.deepEqual(outcomes, ["accepted"]);
    assert.equal(mapping.totalConnections, 1);
    assert.equal(audits.length, 1);
    assert.equal(audits[0]?.mapping, "echo");
    assert.equal(audits[0]?.bytesIn, 5);
    assert.equal(audits[0]?.bytesOut, 5);
  });

  it("closes a stream for an unknown logical port with 1008 and audits it as refused", async (t) => {
    const { audits, outcomes, sender } = await rig(t);
    const ws = await sender();
    ws.send(encodePreamble("nope"));
    const [code] = (await once(ws, "close")) as [number];
    assert.equal(code, 1008);
    await waitFor(() => audits.length === 1, "the audit record");
    assert.equal(audits[0]?.end, "refused");
    assert.deepEqual(outcomes, ["unknown-port"]);
  });

  it("refuses a stream over the mapping's limit with 1013 (try again later)", async (t) => {
    const { mapping, sender } = await rig(t, 1);
    const first = await sender();
    const reply = once(first, "message");
    first.send(encodePreamble("echo"));
    await reply;
    const second = await sender();
    second.send(encodePreamble("echo"));
    const [code] = (await once(second, "close")) as [number];
    assert.equal(code, 1013);
    assert.equal(mapping.rejectedConnections, 1);
  });

  it("refuses a connection without a valid preamble with 1008", async (t) => {
    const { sender, audits } = await rig(t);
    const ws = await sender();
    ws.send(Buffer.from([9, 9, 9, 9]));
    const [code] = (await once(ws, "close")) as [number];
    assert.equal(code, 1008);
    assert.equal(audits.length, 0, "no stream was asked for, so none is audited");
  });
});
