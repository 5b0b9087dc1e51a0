/**
 * The simulation's supervisor (restartPolicy: always): a crash restarts the part after a delay that
 * doubles per crash in a row, an intended stop does not, a failed restart is retried, and after
 * `stop()` nothing comes back. Pure logic over fake processes; the e2e test kills real ones.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { type PartEvent, Supervisor, type Watchable } from "../../sim/supervisor.ts";

function fakeProcess(pid: number): Watchable & { exit(code: number | string): void; stopped: boolean } {
  let exit!: (code: number | string) => void;
  const exited = new Promise<number | string>((r) => {
    exit = r;
  });
  const proc = {
    exited,
    pid,
    stopped: false,
    intended: () => proc.stopped,
    exit: (code: number | string) => exit(code),
  };
  return proc;
}

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `done()` (a loaded machine delays timers; fixed sleeps would flake). */
async function until(done: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await tick(5);
  }
}

test("a crashed part is restarted with doubling delays and reported", async () => {
  const events: PartEvent[] = [];
  const sup = new Supervisor({ restart: true, initialDelayMs: 20, onEvent: (e) => events.push(e) });
  let current = fakeProcess(1);
  let pid = 1;
  const start = async () => {
    current = fakeProcess(++pid);
    sup.watch("relay", current, start);
  };
  sup.watch("relay", current, start);
  current.exit("SIGKILL");
  await until(() => events.length >= 2, "the restart");
  assert.deepEqual(
    events.map((e) => e.type),
    ["crashed", "restarted"],
  );
  assert.equal(events[0]?.type === "crashed" && events[0].restartInMs, 20);
  assert.equal(sup.states()[0]?.pid, 2);
  current.exit(1);
  await until(() => events.length >= 4, "the second restart");
  assert.equal(
    events[2]?.type === "crashed" && events[2].restartInMs,
    40,
    "the second crash in a row waits twice as long",
  );
  assert.equal(sup.states()[0]?.restarts, 2);
  assert.equal(sup.states()[0]?.state, "up");
  assert.equal(sup.crashes(), 2);
  sup.stop();
});

test("an intended stop is not a crash; after stop() nothing restarts; a failed restart is retried", async () => {
  const events: PartEvent[] = [];
  const sup = new Supervisor({ restart: true, initialDelayMs: 10, onEvent: (e) => events.push(e) });
  const a = fakeProcess(1);
  sup.watch("module", a, async () => assert.fail("must not restart"));
  a.stopped = true;
  a.exit(0);
  await tick(30);
  assert.equal(events.length, 0);
  assert.equal(sup.states()[0]?.state, "stopped");

  let attempts = 0;
  const b = fakeProcess(2);
  const restart = async () => {
    attempts += 1;
    if (attempts === 1) throw new Error("port busy");
    sup.watch("hub", fakeProcess(3), restart);
  };
  sup.watch("hub", b, restart);
  b.exit("SIGSEGV");
  await until(() => events.length >= 3, "the retried restart");
  assert.deepEqual(
    events.map((e) => e.type),
    ["crashed", "restart-failed", "restarted"],
  );
  sup.stop();
  const c = fakeProcess(4);
  sup.watch("gw", c, async () => assert.fail("stopped supervisor restarted a part"));
  c.exit(1);
  await tick(30);
});
