/**
 * Azure Relay's namespace quotas in the emulator (issue 18): concurrent connections per namespace
 * (listener channels, relayed connections and waiting senders all count) and hybrid connections
 * per namespace. Shown here with small caps; the defaults are Azure's (5,000 and 10,000).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { startRelayEmulator } from "../../sim/relay-emulator/index.ts";
import { waitFor } from "../helpers/index.ts";
import {
  hcUrl,
  openListener,
  refusedStatus,
  relayedPair,
  rootCredentials,
  tokenFor,
} from "../helpers/relay-emulator-clients.ts";

test("at the namespace's connection quota a listen and a connect are refused; a freed connection can be taken", async (t) => {
  const emu = await startRelayEmulator({ maxConnectionsPerNamespace: 3 });
  t.after(() => emu.close());
  emu.admin.putHybridConnection("a");
  emu.admin.putHybridConnection("b");
  const first = await openListener(t, emu, "a");
  await openListener(t, emu, "b");
  // Two listener channels and one relayed connection: three, the cap.
  const pair = await relayedPair(t, emu, first, "a");
  const auth = (hc: string) => ({
    headers: { ServiceBusAuthorization: tokenFor(emu, hc, rootCredentials(emu)) },
  });
  const listen = await refusedStatus(t, emu, hcUrl(emu, "b", "sb-hc-action=listen"), auth("b"));
  assert.equal(listen.status, 403);
  const connect = await refusedStatus(t, emu, hcUrl(emu, "b", "sb-hc-action=connect"), auth("b"));
  assert.equal(connect.status, 403);
  assert.equal(emu.stats().refusedOverNamespaceQuota, 2);
  assert.equal(emu.stats().listeners, 2, "the refused listen left nothing registered");

  pair.sender.close();
  await waitFor(() => emu.stats().activeConnections === 0, "the relayed connection to end");
  await openListener(t, emu, "b");
  assert.equal(emu.stats().listeners, 3);
});

test("the namespace refuses a hybrid connection past its quota, and keeps the ones it has", async (t) => {
  const emu = await startRelayEmulator({ maxHybridConnectionsPerNamespace: 2 });
  t.after(() => emu.close());
  emu.admin.putHybridConnection("one");
  emu.admin.putHybridConnection("two");
  assert.throws(() => emu.admin.putHybridConnection("three"), {
    code: "RF_ERR_RELAYEMU_QUOTA_EXCEEDED",
    status: 403,
  });
  // Updating one that exists is not a new one.
  assert.equal(emu.admin.putHybridConnection("two", { requiresClientAuthorization: false }).created, false);
  assert.deepEqual(
    emu.admin
      .listHybridConnections()
      .map((h) => h.name)
      .sort(),
    ["one", "two"],
  );
});
