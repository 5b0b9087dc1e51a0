/**
 * azbridge senders that name no port (hardening item 21): `azbridge -L 13389:relay` sends its
 * bind port as the logical port name, and azbridge's listener serves it with its only forwarder.
 * The module does the same with its only mapping; with more than one, the name must match.
 */
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { test } from "node:test";
import { createLogger } from "../../lib/log.ts";
import { allowlistFrom } from "../../modules/relayListener/src/allowlist.ts";
import type { ConnectionContext } from "../../modules/relayListener/src/connection.ts";
import { Reconciler } from "../../modules/relayListener/src/reconciler.ts";
import type { RelayListenerPort } from "../../modules/relayListener/src/relay-listener-port.ts";

class IdleListener extends EventEmitter {
  state = { status: "online" as const, since: Date.now() };
  start() {}
  async close() {}
  updateCredentials() {}
}

function reconciler() {
  const rec = new Reconciler({
    listenerFactory: () => new IdleListener() as unknown as RelayListenerPort,
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
