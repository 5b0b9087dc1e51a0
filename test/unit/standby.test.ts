/** Standby bookkeeping without a network: the listener's gate, the sender's pool registry, the heartbeat. */
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { describe, it } from "node:test";
import type { WebSocket } from "ws";
import { Heartbeat } from "../../lib/hyco/heartbeat.ts";
import { StandbyGate } from "../../lib/hyco/standby-gate.ts";
import { StandbyPool } from "../../lib/hyco/standby-pool.ts";
import { StandbyPools } from "../../lib/hyco/standby-pools.ts";

function fakeWs(): WebSocket & { closedWith?: number } {
  const ws = {
    OPEN: 1,
    readyState: 1,
    closedWith: undefined as number | undefined,
    close(code: number) {
      ws.closedWith = code;
      ws.readyState = 3;
    },
  };
  return ws as unknown as WebSocket & { closedWith?: number };
}

describe("StandbyGate", () => {
  it("holds up to its limit, frees a place on release, closes what it holds", () => {
    const gate = new StandbyGate({ max: 2, idleMs: 1000 });
    const [a, b, c] = [fakeWs(), fakeWs(), fakeWs()];
    const releaseA = gate.hold(a);
    assert.ok(releaseA);
    assert.ok(gate.hold(b));
    assert.equal(gate.hold(c), undefined, "over the limit");
    releaseA();
    assert.equal(gate.count, 1);
    assert.ok(gate.hold(c));
    gate.closeAll("stopping");
    assert.equal(gate.count, 0);
    assert.equal(a.closedWith, undefined, "released before: not closed");
    assert.equal(b.closedWith, 1001);
    assert.equal(c.closedWith, 1001);
  });

  it("a limit of 0 holds nothing", () => {
    assert.equal(new StandbyGate({ max: 0, idleMs: 1000 }).hold(fakeWs()), undefined);
  });
});

describe("StandbyPools", () => {
  const sender = { endpoint: "ws://127.0.0.1:1", hybridConnection: "hc", keyName: "send", key: "k1" };

  it("keeps one pool per hybrid connection and replaces it when the key changes", async () => {
    const pools = new StandbyPools();
    const first = pools.for(sender);
    assert.equal(await first.take(), undefined, "nothing ready before the first use");
    assert.equal(pools.for({ ...sender }), first);
    const other = pools.for({ ...sender, hybridConnection: "other" });
    assert.notEqual(other, first);
    assert.equal(pools.count, 2, "a pool in use is kept");
    const rotated = pools.for({ ...sender, key: "k2" });
    assert.notEqual(rotated, first);
    assert.ok(first.isClosed, "the pool of the old key is closed");
    assert.equal(await first.take(), undefined);
    pools.close();
    assert.ok(rotated.isClosed && other.isClosed);
    assert.equal(pools.count, 0);
  });
});

describe("Heartbeat", () => {
  /** A WebSocket stand-in that answers pings (or not) and records terminate. */
  function peer(answers: boolean) {
    const ws = Object.assign(new EventEmitter(), {
      OPEN: 1,
      readyState: 1,
      pings: 0,
      terminated: false,
      ping() {
        ws.pings++;
        if (answers) queueMicrotask(() => ws.emit("pong"));
      },
      terminate() {
        ws.terminated = true;
        ws.readyState = 3;
      },
    });
    return ws;
  }

  it("pings every member and terminates one that missed the previous pong", async () => {
    const alive = peer(true);
    const silent = peer(false);
    const beat = new Heartbeat(() => [alive, silent] as unknown as WebSocket[]);
    beat.beat();
    await new Promise((r) => setImmediate(r));
    assert.deepEqual([alive.pings, silent.pings], [1, 1]);
    beat.beat();
    await new Promise((r) => setImmediate(r));
    assert.equal(alive.terminated, false, "answered: kept");
    assert.equal(silent.terminated, true, "no pong since the last ping: terminated");
    assert.equal(alive.pings, 2);
    beat.beat();
    assert.equal(silent.pings, 1, "a terminated connection is not pinged again");
  });
});

describe("StandbyPool demand (ADR 0016)", () => {
  // Nothing listens there: the pool's refills fail at once and back off, so only demand is seen.
  const nowhere = { endpoint: "ws://127.0.0.1:9", hybridConnection: "hc" };
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it("targets the largest burst, within size … maxSize, and falls back to size two windows later", async () => {
    const pool = new StandbyPool(nowhere, {
      size: 2,
      maxSize: 5,
      demandWindowMs: 200,
      failureBackoffMs: 60_000,
    });
    try {
      assert.equal(pool.target(), 2, "a cold pool keeps its floor");
      await Promise.all(Array.from({ length: 3 }, () => pool.take()));
      assert.equal(pool.target(), 3, "three at once");
      await Promise.all(Array.from({ length: 8 }, () => pool.take()));
      assert.equal(pool.target(), 5, "eight at once: the ceiling");
      await sleep(450);
      assert.equal(pool.target(), 2, "no takes for two windows: back to the floor");
    } finally {
      pool.close();
    }
  });

  it("sessions opened one by one do not add up, however long they stay open", async () => {
    const pool = new StandbyPool(nowhere, {
      size: 1,
      maxSize: 8,
      demandWindowMs: 60_000,
      failureBackoffMs: 60_000,
    });
    try {
      for (let i = 0; i < 4; i++) {
        assert.equal(await pool.take(), undefined);
        pool.noteOrdinary(fakeWs()); // an open session on an ordinary connection
        await sleep(300); // longer than a burst
      }
      assert.equal(pool.target(), 1);
    } finally {
      pool.close();
    }
  });
});
