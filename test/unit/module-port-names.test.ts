/**
 * azbridge senders that name no port (hardening item 21): `azbridge -L 13389:relay` sends its
 * bind port as the logical port name, and azbridge's listener serves it with its only forwarder.
 * The module does the same with its only mapping; with more than one, the name must match. A
 * mapping may answer to an azbridge port name twin keys cannot hold (`portName`, with `.`).
 */
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { test } from "node:test";
import { createLogger } from "../../lib/log.ts";
import { allowlistFrom } from "../../modules/relayListener/src/allowlist.ts";
import type { ConnectionContext } from "../../modules/relayListener/src/connection.ts";
import { Reconciler } from "../../modules/relayListener/src/reconciler.ts";
import type { RelayListener } from "../../modules/relayListener/src/relay-listener.ts";

class IdleListener extends EventEmitter {
  state = { status: "online" as const, since: Date.now() };
  start() {}
  async close() {}
  updateCredentials() {}
}

function reconciler() {
  const rec = new Reconciler({
    listenerFactory: () => new IdleListener() as unknown as RelayListener,
    listenerCount: 1,
    allowlist: allowlistFrom("127.0.0.0/8:*\n", async () => []),
    logger: createLogger("test", { level: "silent" }),
    preambleTimeoutMs: 1000,
    keepAliveMs: 1000,
  });
  // The context connections are served with: the lookup every relayed connection makes.
  const ctx = (rec as unknown as { ctx: ConnectionContext }).ctx;
  return { rec, find: (name: string) => ctx.findMapping(name)?.name };
}

test("a numeric logical port name is served by the only mapping, as azbridge's listener does", async () => {
  const { rec, find } = reconciler();
  await rec.applyDesired({ mappings: { rdp: { target: "127.0.0.1:3389" } } }, 1);
  assert.equal(find("13389"), "rdp");
  assert.equal(find("rdp"), "rdp");
  assert.equal(find("other"), undefined, "a non-numeric name still has to match");
});

test("with two mappings a numeric name must match one exactly", async () => {
  const { rec, find } = reconciler();
  await rec.applyDesired(
    { mappings: { rdp: { target: "127.0.0.1:3389" }, "5432": { target: "127.0.0.1:5432" } } },
    1,
  );
  assert.equal(find("13389"), undefined);
  assert.equal(find("5432"), "5432");
});

test("a mapping with a portName answers to that name only, an azbridge name with '.' too", async () => {
  const { rec, find } = reconciler();
  await rec.applyDesired(
    {
      mappings: {
        rdp_main: { target: "127.0.0.1:3389", portName: "rdp.main" },
        ssh: { target: "127.0.0.1:22", portName: "plant/ssh" },
        web: { target: "127.0.0.1:80" },
      },
    },
    1,
  );
  assert.equal(find("rdp.main"), "rdp_main");
  assert.equal(find("plant/ssh"), "ssh");
  assert.equal(find("web"), "web", "no portName: the mapping's name");
  assert.equal(find("rdp_main"), undefined, "the twin name is not the logical port any more");
  // A portName changed by a later patch is what the next connection is matched by.
  await rec.applyDesired({ mappings: { rdp_main: { target: "127.0.0.1:3389", portName: "rdp.backup" } } }, 2);
  assert.equal(find("rdp.backup"), "rdp_main");
  assert.equal(find("rdp.main"), undefined);
  assert.equal(find("13389"), "rdp_main", "a numeric name still reaches the only mapping");
});
