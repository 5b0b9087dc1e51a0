/**
 * Status codes of the emulator's handshakes (relay-protocol.md §1.7, §5.8): 400 unknown action,
 * 404 unknown entity / no listener, 401 missing, forged, expired or unknown-rule tokens, 403 valid
 * tokens without the right or for another entity, the 26th listener, entity- and namespace-level
 * rules with primary and secondary keys, anonymous senders, token in the query, and wss://.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { audienceFor, createSasToken } from "../../lib/hyco/sas.ts";
import { startRelayEmulator } from "../../sim/relay-emulator/index.ts";
import { waitFor } from "../helpers/index.ts";
import {
  hcUrl,
  nextMessage,
  openListener,
  openWs,
  refusedStatus,
  relayedPair,
  rootCredentials,
  startSender,
  tokenFor,
  UpgradeRefused,
} from "../helpers/relay-emulator-clients.ts";

test("handshake status codes: 400, 404, 401, 403", async (t) => {
  const emu = await startRelayEmulator();
  t.after(() => emu.close());
  emu.admin.putHybridConnection("site-a");
  emu.admin.putHybridConnection("site-b");
  const send = emu.admin.putAuthorizationRule("site-a", "send", ["Send"]).rule;
  const listen = emu.admin.putAuthorizationRule("site-a", "listen", ["Listen"]).rule;
  const root = rootCredentials(emu);
  const auth = (token: string) => ({ headers: { ServiceBusAuthorization: token } });

  // unknown action
  const r400 = await refusedStatus(
    t,
    emu,
    hcUrl(emu, "site-a", "sb-hc-action=dance"),
    auth(tokenFor(emu, "site-a", root)),
  );
  assert.equal(r400.status, 400);
  // unknown entity
  const r404 = await refusedStatus(
    t,
    emu,
    hcUrl(emu, "nope", "sb-hc-action=listen"),
    auth(tokenFor(emu, "nope", root)),
  );
  assert.equal(r404.status, 404);
  assert.equal(r404.statusMessage, "Endpoint does not exist");
  // no listener
  const noListener = await refusedStatus(
    t,
    emu,
    hcUrl(emu, "site-a", "sb-hc-action=connect"),
    auth(tokenFor(emu, "site-a", root)),
  );
  assert.equal(noListener.status, 404);
  assert.equal(noListener.statusMessage, "There are no listeners connected for the endpoint");
  // a missing action means connect
  const noAction = await refusedStatus(
    t,
    emu,
    hcUrl(emu, "site-a", "x=1"),
    auth(tokenFor(emu, "site-a", root)),
  );
  assert.equal(noAction.statusMessage, "There are no listeners connected for the endpoint");

  const listenUrl = hcUrl(emu, "site-a", "sb-hc-action=listen");
  // missing token
  assert.equal((await refusedStatus(t, emu, listenUrl)).status, 401);
  // forged: right rule name, wrong key
  assert.equal(
    (
      await refusedStatus(
        t,
        emu,
        listenUrl,
        auth(tokenFor(emu, "site-a", { keyName: "listen", key: "forged" })),
      )
    ).status,
    401,
  );
  // expired
  const expired = createSasToken(audienceFor(emu.endpoint, "site-a"), "listen", listen.primaryKey, {
    nowSeconds: Math.floor(Date.now() / 1000) - 7200,
    ttlSeconds: 60,
  });
  assert.equal((await refusedStatus(t, emu, listenUrl, auth(expired))).status, 401);
  // unknown rule, garbage, tampered signature
  assert.equal(
    (await refusedStatus(t, emu, listenUrl, auth(tokenFor(emu, "site-a", { keyName: "who", key: "x" }))))
      .status,
    401,
  );
  assert.equal((await refusedStatus(t, emu, listenUrl, auth("SharedAccessSignature garbage"))).status, 401);
  const good = tokenFor(emu, "site-a", { keyName: "listen", key: listen.primaryKey });
  assert.equal(
    (await refusedStatus(t, emu, listenUrl, auth(good.replace(/sig=[^&]{4}/, "sig=AAAA")))).status,
    401,
  );
  // valid token, missing right: Send rule listening, Listen rule sending
  assert.equal(
    (
      await refusedStatus(
        t,
        emu,
        listenUrl,
        auth(tokenFor(emu, "site-a", { keyName: "send", key: send.primaryKey })),
      )
    ).status,
    403,
  );
  const l = await openListener(t, emu, "site-a", { keyName: "listen", key: listen.primaryKey });
  assert.ok(l);
  const sendAsListen = await refusedStatus(t, emu, hcUrl(emu, "site-a", "sb-hc-action=connect"), auth(good));
  assert.equal(sendAsListen.status, 403);
  // token for another entity (namespace root key, audience site-b) on site-a
  assert.equal((await refusedStatus(t, emu, listenUrl, auth(tokenFor(emu, "site-b", root)))).status, 403);
  // an entity rule does not exist on another entity
  const otherEntity = await refusedStatus(
    t,
    emu,
    hcUrl(emu, "site-b", "sb-hc-action=listen"),
    auth(tokenFor(emu, "site-b", { keyName: "listen", key: listen.primaryKey })),
  );
  assert.equal(otherEntity.status, 401);
  assert.ok(emu.stats().authFailures >= 8);
});

test("secondary keys, namespace-level rules, token in the query, longest-prefix names", async (t) => {
  const emu = await startRelayEmulator({
    authorizationRules: [{ name: "fleet-listen", rights: ["Listen"] }],
    hybridConnections: [{ name: "plant" }, { name: "plant/line.1" }],
  });
  t.after(() => emu.close());
  const nsRule = emu.admin.getAuthorizationRule(undefined, "fleet-listen")!;
  // namespace-level rule with its secondary key, on an entity whose name holds '/' and '.'
  const l1 = await openListener(t, emu, "plant/line.1", {
    keyName: "fleet-listen",
    key: nsRule.secondaryKey,
  });
  // token in the query string; mixed case path resolves to the longest configured name
  const l2 = await openListener(
    t,
    emu,
    "PLANT/Line.1",
    { keyName: "fleet-listen", key: nsRule.primaryKey },
    { via: "query" },
  );
  assert.equal(emu.stats().hybridConnections["plant/line.1"]?.listeners, 2);
  assert.equal(emu.stats().hybridConnections.plant?.listeners, 0);
  // a suffix after the name reaches the same entity and travels in the address
  const senderP = startSender(t, emu, "plant/line.1/extra/path", rootCredentials(emu), { query: "app=1" });
  senderP.catch(() => undefined);
  const chosen = await waitFor(() => [l1, l2].find((l) => l.frames.length > 0), "an accept command");
  const accept = await chosen.nextAccept();
  assert.match(accept.address, /\/\$hc\/plant\/line\.1\/extra\/path\?app=1&sb-hc-action=accept&sb-hc-id=/);
  await openWs(t, emu, accept.address);
  await senderP;
});

test("anonymous senders when the entity does not require client authorization", async (t) => {
  const emu = await startRelayEmulator();
  t.after(() => emu.close());
  emu.admin.putHybridConnection("open", { requiresClientAuthorization: false });
  const listener = await openListener(t, emu, "open");
  const senderP = startSender(t, emu, "open", null);
  const accept = await listener.nextAccept();
  await openWs(t, emu, accept.address);
  await senderP;
  // and the flag is enforced when turned back on
  emu.admin.putHybridConnection("open", { requiresClientAuthorization: true });
  const refused = await startSender(t, emu, "open", null).catch((e: unknown) => e);
  assert.ok(refused instanceof UpgradeRefused);
  assert.equal(refused.status, 401);
});

test("25 listeners per hybrid connection; the 26th is refused (403 by default, configurable)", async (t) => {
  for (const status of [403, 429]) {
    const emu = await startRelayEmulator(status === 403 ? {} : { listenerQuotaStatus: status });
    t.after(() => emu.close());
    emu.admin.putHybridConnection("busy");
    const listeners = await Promise.all(Array.from({ length: 25 }, () => openListener(t, emu, "busy")));
    assert.equal(listeners.length, 25);
    const token = tokenFor(emu, "busy", rootCredentials(emu));
    const refused = await refusedStatus(t, emu, hcUrl(emu, "busy", "sb-hc-action=listen"), {
      headers: { ServiceBusAuthorization: token },
    });
    assert.equal(refused.status, status);
    assert.equal(emu.stats().listenersRefusedOverQuota, 1);
    // a freed slot can be taken again
    listeners[0]!.ws.close();
    await waitFor(() => emu.stats().listeners === 24, "listener to deregister");
    await openListener(t, emu, "busy");
  }
});

test("round-robin and seeded distribution spread senders over listeners", async (t) => {
  const emu = await startRelayEmulator({ distribution: "round-robin" });
  t.after(() => emu.close());
  emu.admin.putHybridConnection("rr");
  const ls = [
    await openListener(t, emu, "rr"),
    await openListener(t, emu, "rr"),
    await openListener(t, emu, "rr"),
  ];
  for (let i = 0; i < 6; i++) {
    const senderP = startSender(t, emu, "rr");
    senderP.catch(() => undefined);
    const l = ls[i % 3]!;
    const accept = await l.nextAccept(2_000);
    await openWs(t, emu, accept.address);
    await senderP;
  }
  for (const l of ls) assert.equal(l.frames.length, 2);
});

test("wss:// with a generated CA written to caFile", async (t) => {
  const emu = await startRelayEmulator({ tls: true });
  t.after(() => emu.close());
  assert.match(emu.url, /^wss:\/\//);
  assert.ok(emu.caFile);
  emu.admin.putHybridConnection("secure");
  const listener = await openListener(t, emu, "secure");
  const { sender, rendezvous, accept } = await relayedPair(t, emu, listener, "secure");
  assert.match(accept.address, /^wss:\/\//);
  sender.send(Buffer.from("over tls"));
  assert.equal((await nextMessage(rendezvous)).data.toString(), "over tls");
});
