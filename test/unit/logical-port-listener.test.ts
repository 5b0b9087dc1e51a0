/**
 * The listener side of the logical-port layer (lib/hyco/header-reader.ts and
 * lib/hyco/logical-port-listener.ts) against a fake WebSocket: the reader's bound and pause, the
 * preamble answers, the `$standby` handshake and the close codes.
 */
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { describe, it } from "node:test";
import type { WebSocket } from "ws";
import { HEADER_HOLD_BYTES, HeaderReader } from "../../lib/hyco/header-reader.ts";
import { CLOSE_CODES, readLogicalPort } from "../../lib/hyco/logical-port-listener.ts";
import { encodePreamble, MODE_DATAGRAM, PreambleParser } from "../../lib/hyco/preamble.ts";
import { CLOSE_STANDBY_FULL } from "../../lib/hyco/standby.ts";
import { StandbyGate } from "../../lib/hyco/standby-gate.ts";

class FakeWs extends EventEmitter {
  readonly OPEN = 1;
  readonly CONNECTING = 0;
  readyState = 1;
  paused = false;
  pauses = 0;
  sent: Buffer[] = [];
  closed: { code: number; reason: string } | undefined;
  pause() {
    this.paused = true;
    this.pauses++;
  }
  resume() {
    this.paused = false;
  }
  send(data: Buffer) {
    this.sent.push(Buffer.from(data));
  }
  close(code: number, reason: string) {
    this.closed = { code, reason };
    this.readyState = 3;
  }
  terminate() {
    this.readyState = 3;
  }
  ping() {}
  message(data: Buffer) {
    this.emit("message", data, true);
  }
}

const asWs = (f: FakeWs) => f as unknown as WebSocket;
const hex = (b: Buffer | undefined) => b?.toString("hex");

describe("HeaderReader", () => {
  it("pauses the WebSocket once its bound is held unread and resumes on release", () => {
    const ws = new FakeWs();
    const reader = new HeaderReader(asWs(ws), [], { maxHeldBytes: 1_000 });
    ws.message(Buffer.alloc(600));
    assert.equal(ws.paused, false);
    ws.message(Buffer.alloc(600));
    assert.equal(ws.paused, true);
    assert.equal(reader.stats.pauses, 1);
    assert.equal(reader.stats.peakHeldBytes, 1_200);
    const rest = reader.release();
    assert.equal(rest.length, 2);
    assert.equal(ws.paused, false);
  });

  it("resumes once a read consumes the hold below its bound", async () => {
    const ws = new FakeWs();
    const reader = new HeaderReader(asWs(ws), [], { maxHeldBytes: 10 });
    ws.message(encodePreamble("echo"));
    assert.equal(ws.paused, false, "8 bytes are under the bound");
    ws.message(Buffer.from("abc"));
    assert.equal(ws.paused, true);
    const step = await reader.read(new PreambleParser(), 1_000, "preamble");
    assert.equal(step.value.portName, "echo");
    assert.equal(ws.paused, false);
    assert.deepEqual(reader.release().map(hex), [hex(Buffer.from("abc"))]);
  });

  it("defaults to a 64 KiB bound", () => {
    assert.equal(HEADER_HOLD_BYTES, 65_536);
  });

  it("reports a late header with its code, and a closed sender with closedCode", async () => {
    const ws = new FakeWs();
    const reader = new HeaderReader(asWs(ws), [], {
      code: "RF_ERR_MODULE_HEADER",
      closedCode: "RF_ERR_PREAMBLE_TIMEOUT",
    });
    await assert.rejects(reader.read(new PreambleParser(), 20, "preamble"), { code: "RF_ERR_MODULE_HEADER" });
    const late = reader.read(new PreambleParser(), 5_000, "preamble");
    ws.emit("close");
    await assert.rejects(late, { code: "RF_ERR_PREAMBLE_TIMEOUT" });
  });
});

describe("readLogicalPort", () => {
  const opts = { preambleTimeoutMs: 1_000, recycled: false };

  it("returns the port name and leaves the reply to the caller", async () => {
    const ws = new FakeWs();
    const reader = new HeaderReader(asWs(ws), [encodePreamble("ssh")]);
    assert.deepEqual(await readLogicalPort(asWs(ws), reader, opts), { portName: "ssh", standby: false });
    assert.equal(ws.sent.length, 0);
  });

  it("answers a bad version [0,0,0] and closes 1008", async () => {
    const ws = new FakeWs();
    const reader = new HeaderReader(asWs(ws), [Buffer.from([2, 0, 0, 1, 0x61])]);
    assert.equal(await readLogicalPort(asWs(ws), reader, opts), undefined);
    assert.equal(hex(ws.sent[0]), "000000");
    assert.equal(ws.closed?.code, CLOSE_CODES.policy);
  });

  it("refuses datagram mode with azbridge's reply [0,0,255]", async () => {
    const ws = new FakeWs();
    const reader = new HeaderReader(asWs(ws), [encodePreamble("udp", MODE_DATAGRAM)]);
    assert.equal(await readLogicalPort(asWs(ws), reader, opts), undefined);
    assert.equal(hex(ws.sent[0]), "0000ff");
  });

  it("closes a $standby without a gate as an unknown port (1008)", async () => {
    const ws = new FakeWs();
    const reader = new HeaderReader(asWs(ws), [encodePreamble("$standby")]);
    assert.equal(await readLogicalPort(asWs(ws), reader, opts), undefined);
    assert.equal(ws.closed?.code, CLOSE_CODES.policy);
  });

  it("answers a $standby [1,0,0], holds it, then serves the real preamble over it", async () => {
    const ws = new FakeWs();
    const gate = new StandbyGate({ max: 1, idleMs: 1_000 });
    const reader = new HeaderReader(asWs(ws), [encodePreamble("$standby")]);
    const pending = readLogicalPort(asWs(ws), reader, { ...opts, standby: gate });
    await new Promise((r) => setImmediate(r));
    assert.equal(hex(ws.sent[0]), "010000");
    assert.equal(gate.count, 1);
    ws.message(encodePreamble("echo"));
    assert.deepEqual(await pending, { portName: "echo", standby: true });
    assert.equal(gate.count, 0, "released from the gate once it serves a stream");
    gate.closeAll("done");
  });

  it("closes a $standby over the gate's limit with 1013", async () => {
    const gate = new StandbyGate({ max: 0, idleMs: 1_000 });
    const ws = new FakeWs();
    const reader = new HeaderReader(asWs(ws), [encodePreamble("$standby")]);
    assert.equal(await readLogicalPort(asWs(ws), reader, { ...opts, standby: gate }), undefined);
    assert.equal(ws.closed?.code, CLOSE_STANDBY_FULL);
  });

  it("ends a standby that stays unused past the idle time with a normal close", async () => {
    const gate = new StandbyGate({ max: 1, idleMs: 30 });
    const ws = new FakeWs();
    const reader = new HeaderReader(asWs(ws), [encodePreamble("$standby")]);
    assert.equal(await readLogicalPort(asWs(ws), reader, { ...opts, standby: gate }), undefined);
    assert.equal(ws.closed?.code, 1000);
    gate.closeAll("done");
  });
});
