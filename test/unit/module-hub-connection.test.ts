/**
 * The module's IoT Hub connection (hardening item 8): every SDK call has a deadline, and a missed
 * one re-opens the client once, however many calls missed it, then runs the owner's recovery.
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { hasErrorCode } from "../../lib/errors.ts";
import { createLogger } from "../../lib/log.ts";
import { DEADLINE_CODE, withDeadline } from "../../modules/relayListener/src/deadline.ts";
import type { ModuleHubClient } from "../../modules/relayListener/src/hub-client.ts";
import { HubConnection } from "../../modules/relayListener/src/hub-connection.ts";

const logger = createLogger("test", {
  destination: new Writable({ write: (_c, _e, cb) => cb() }),
  level: "silent",
});

function fakeClient() {
  const calls: string[] = [];
  const client = {
    open: async () => calls.push("open"),
    close: async () => calls.push("close"),
  } as unknown as ModuleHubClient;
  return { client, calls };
}

test("withDeadline rejects with RF_ERR_MODULE_IOTHUB_TIMEOUT when the call never answers", async () => {
  const never = new Promise<void>(() => {});
  await assert.rejects(withDeadline(never, 20, "update"), (err) => hasErrorCode(err, DEADLINE_CODE));
  assert.equal(await withDeadline(Promise.resolve(7), 1_000, "x"), 7);
});

test("a call that misses its deadline re-opens the client once and runs the recovery", async () => {
  const { client, calls } = fakeClient();
  let recovered = 0;
  const hub = new HubConnection(client, {
    deadlineMs: 30,
    logger,
    isStopping: () => false,
    onReopened: async () => {
      recovered++;
    },
  });
  const never = () => new Promise<void>(() => {});
  const results = await Promise.allSettled([hub.call("a", never), hub.call("b", never)]);
  assert.ok(results.every((r) => r.status === "rejected"));
  for (let i = 0; i < 100 && recovered === 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(calls, ["close", "open"], "one close and one open for both missed calls");
  assert.equal(recovered, 1);
  assert.equal(await hub.call("c", async () => "answered"), "answered");
});

test("an open that hangs is closed and tried again", async () => {
  const calls: string[] = [];
  let opens = 0;
  const client = {
    open: () => {
      calls.push("open");
      return ++opens === 1 ? new Promise(() => {}) : Promise.resolve();
    },
    close: async () => calls.push("close"),
  } as unknown as ModuleHubClient;
  const hub = new HubConnection(client, {
    deadlineMs: 30,
    logger,
    isStopping: () => false,
    onReopened: async () => {},
    backoff: { initialMs: 10, maxMs: 10 },
  });
  await hub.open();
  assert.deepEqual(calls, ["open", "close", "open"]);
});

test("a dropped connection is the SDK's to handle until the module closed the client once, then the module's", async () => {
  const { client, calls } = fakeClient();
  let recovered = 0;
  const hub = new HubConnection(client, {
    deadlineMs: 1_000,
    logger,
    isStopping: () => false,
    onReopened: async () => {
      recovered++;
    },
  });
  hub.transportLost();
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(calls, [], "the SDK still watches its transport: nothing to do");
  // A missed deadline closes the client: the SDK's close drops its own disconnect handler.
  await hub.reopen("no answer");
  assert.deepEqual(calls, ["close", "open"]);
  hub.transportLost();
  for (let i = 0; i < 100 && recovered < 2; i++) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(calls, ["close", "open", "open"], "the module re-opens by itself");
  assert.equal(recovered, 2);
});
