/**
 * TwinSync against a scripted fake ModuleClient: `$version` order, stale patches ignored, a gap
 * triggers a full read, a getTwin that never answers is abandoned and retried, and a reconnect
 * re-reads the full twin (removed keys disappear, unlike the SDK's merged cache).
 */
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { Writable } from "node:stream";
import { test } from "node:test";
import { createLogger } from "../../lib/log.ts";
import type { ModuleHubClient, ModuleTwin } from "../../modules/relayListener/src/hub-client.ts";
import { TwinSync } from "../../modules/relayListener/src/twin-sync.ts";
import { waitFor } from "../helpers/index.ts";

class FakeTwin extends EventEmitter implements ModuleTwin {
  properties = {
    desired: {} as Record<string, unknown>,
    reported: { update: (_p: unknown, done: (err?: Error) => void) => done() },
  };
}

class FakeClient extends EventEmitter implements ModuleHubClient {
  twin = new FakeTwin();
  server: Record<string, unknown> = { $version: 1 };
  hang = 0;
  gets = 0;
  async open() {
    this.emit("connect");
  }
  async close() {}
  getTwin(): Promise<ModuleTwin> {
    this.gets++;
    if (this.hang > 0) {
      this.hang--;
      return new Promise(() => {}); // the SDK's lost-response behaviour
    }
    this.twin.properties.desired = structuredClone(this.server);
    return Promise.resolve(this.twin);
  }
  onMethod() {}
}

const logger = createLogger("test", {
  destination: new Writable({ write: (_c, _e, cb) => cb() }),
  level: "silent",
});

test("patches apply in $version order; stale ignored; gap and reconnect re-read the full twin", async () => {
  const client = new FakeClient();
  client.server = { mappings: { a: { target: "h:1" } }, $version: 5 };
  const seen: Array<{ v: number | null; doc: Record<string, unknown> }> = [];
  const sync = new TwinSync(client, (doc, v) => seen.push({ v, doc }), {
    twinTimeoutMs: 200,
    twinResyncMs: 60_000,
    logger,
    retryInitialMs: 10,
  });
  await client.open();
  await sync.start();
  assert.deepEqual(
    seen.map((s) => s.v),
    [5],
  );

  client.twin.emit("properties.desired", { mappings: { b: { target: "h:2" } }, $version: 6 });
  client.twin.emit("properties.desired", { mappings: { a: null }, $version: 5 }); // stale
  client.twin.emit("properties.desired", { mappings: { a: null }, $version: 7 });
  assert.deepEqual(
    seen.map((s) => s.v),
    [5, 6, 7],
  );
  assert.deepEqual(seen[2]?.doc.mappings, { b: { target: "h:2" } });

  // Gap: version 9 after 7 means 8 was missed: read the full twin.
  client.server = { mappings: { c: { target: "h:3" } }, $version: 9 };
  const gets = client.gets;
  client.twin.emit("properties.desired", { mappings: { z: 1 }, $version: 9 });
  await waitFor(() => seen.length === 4, "full read after gap");
  assert.equal(client.gets, gets + 1);
  assert.deepEqual(seen[3]?.doc.mappings, { c: { target: "h:3" } });

  // Reconnect: the twin changed while we were away; b's removal must show.
  client.server = { mappings: {}, $version: 12 };
  client.hang = 1; // and the first GET is lost
  client.emit("connect");
  await waitFor(() => seen.length === 5, "full read after reconnect", { timeoutMs: 5_000 });
  assert.deepEqual(seen[4]?.doc.mappings, {});
  assert.equal(seen[4]?.v, 12);
  sync.stop();
});
