/**
 * The relay emulator's HTTP admin API (sim/relay-emulator/README.md): Manage-token auth, hybrid connection and rule
 * CRUD at both levels, keys kept on update, regenerateKeys (either key valid), stats, faults —
 * and the command: one JSON "listening" line, SIGTERM → exit 0.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { audienceFor, createSasToken } from "../../lib/hyco/sas.ts";
import { type RelayEmulator, startRelayEmulator } from "../../sim/relay-emulator/index.ts";
import { spawnTs, tempDir } from "../helpers/index.ts";
import {
  hcUrl,
  openListener,
  refusedStatus,
  startSender,
  UpgradeRefused,
} from "../helpers/relay-emulator-clients.ts";

function manageToken(emu: RelayEmulator, keyName = emu.manageKeyName, key = emu.manageKey): string {
  return createSasToken(audienceFor(emu.endpoint), keyName, key);
}

async function api(
  emu: RelayEmulator,
  method: string,
  path: string,
  body?: unknown,
  token: string | null = manageToken(emu),
): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`http://127.0.0.1:${emu.port}/$admin${path}`, {
    method,
    headers: {
      ...(token ? { authorization: token } : {}),
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

test("admin API: auth (401 without or with a bad token, 403 without Manage)", async (t) => {
  const emu = await startRelayEmulator({ authorizationRules: [{ name: "ops-listen", rights: ["Listen"] }] });
  t.after(() => emu.close());
  assert.equal((await api(emu, "GET", "/hybridConnections", undefined, null)).status, 401);
  assert.equal(
    (await api(emu, "GET", "/hybridConnections", undefined, manageToken(emu, emu.manageKeyName, "forged")))
      .status,
    401,
  );
  const listenKey = emu.admin.getAuthorizationRule(undefined, "ops-listen")!.primaryKey;
  assert.equal(
    (await api(emu, "GET", "/hybridConnections", undefined, manageToken(emu, "ops-listen", listenKey)))
      .status,
    403,
  );
  // an entity-scoped token is not a namespace token
  emu.admin.putHybridConnection("x");
  const entityToken = createSasToken(audienceFor(emu.endpoint, "x"), emu.manageKeyName, emu.manageKey);
  assert.equal((await api(emu, "GET", "/hybridConnections", undefined, entityToken)).status, 403);
  assert.equal((await api(emu, "GET", "/hybridConnections")).status, 200);
  assert.equal((await api(emu, "GET", "/nothing-here")).status, 404);
});

test("admin API: hybrid connection and rule CRUD, keys and regeneration", async (t) => {
  const emu = await startRelayEmulator();
  t.after(() => emu.close());
  assert.equal((await api(emu, "PUT", "/hybridConnections/site-0042", {})).status, 201);
  const again = await api(emu, "PUT", "/hybridConnections/site-0042", { requiresClientAuthorization: false });
  assert.equal(again.status, 200);
  assert.deepEqual(again.json, { name: "site-0042", requiresClientAuthorization: false, listenerCount: 0 });
  assert.equal((await api(emu, "PUT", "/hybridConnections/bad%20name", {})).status, 400);
  assert.equal((await api(emu, "PUT", "/hybridConnections/x", "{not json")).status, 400);
  assert.equal(
    (await api(emu, "PUT", "/hybridConnections/x", { requiresClientAuthorization: "yes" })).status,
    400,
  );

  const created = await api(emu, "PUT", "/hybridConnections/site-0042/authorizationRules/listen", {
    rights: ["Listen"],
  });
  assert.equal(created.status, 201);
  const rule = created.json as { name: string; rights: string[]; primaryKey: string; secondaryKey: string };
  assert.equal(rule.name, "listen");
  assert.deepEqual(rule.rights, ["Listen"]);
  assert.ok(rule.primaryKey.length >= 32 && rule.secondaryKey !== rule.primaryKey);
  // update keeps keys
  const updated = await api(emu, "PUT", "/hybridConnections/site-0042/authorizationRules/listen", {
    rights: ["Listen", "Send"],
  });
  assert.equal(updated.status, 200);
  assert.equal((updated.json as typeof rule).primaryKey, rule.primaryKey);
  assert.deepEqual((await api(emu, "GET", "/hybridConnections/site-0042/authorizationRules/listen")).json, {
    ...rule,
    rights: ["Listen", "Send"],
  });
  assert.equal(
    (await api(emu, "PUT", "/hybridConnections/site-0042/authorizationRules/r", { rights: ["Fly"] })).status,
    400,
  );
  assert.equal(
    (await api(emu, "PUT", "/hybridConnections/nope/authorizationRules/r", { rights: ["Listen"] })).status,
    404,
  );

  // the key works for listening; after regenerating the primary, the secondary still does
  const cred = { keyName: "listen", key: rule.primaryKey };
  const l1 = await openListener(t, emu, "site-0042", cred);
  const regen = await api(
    emu,
    "POST",
    "/hybridConnections/site-0042/authorizationRules/listen/regenerateKeys",
    {
      keyType: "PrimaryKey",
    },
  );
  assert.equal(regen.status, 200);
  assert.notEqual((regen.json as typeof rule).primaryKey, rule.primaryKey);
  assert.equal((regen.json as typeof rule).secondaryKey, rule.secondaryKey);
  const listenUrl = hcUrl(emu, "site-0042", "sb-hc-action=listen");
  const oldToken = createSasToken(audienceFor(emu.endpoint, "site-0042"), "listen", rule.primaryKey);
  assert.equal(
    (await refusedStatus(t, emu, listenUrl, { headers: { ServiceBusAuthorization: oldToken } })).status,
    401,
  );
  await openListener(t, emu, "site-0042", { keyName: "listen", key: rule.secondaryKey });
  const setKey = await api(
    emu,
    "POST",
    "/hybridConnections/site-0042/authorizationRules/listen/regenerateKeys",
    {
      keyType: "SecondaryKey",
      key: "my-own-key",
    },
  );
  assert.equal((setKey.json as typeof rule).secondaryKey, "my-own-key");
  assert.equal(l1.ws.readyState, l1.ws.OPEN, "regeneration does not drop established listeners");

  // list shows listener counts
  const list = await api(emu, "GET", "/hybridConnections");
  assert.deepEqual(list.json, [{ name: "site-0042", requiresClientAuthorization: false, listenerCount: 2 }]);

  // namespace-level rules
  const ns = await api(emu, "PUT", "/authorizationRules/fleet", { rights: ["Send"] });
  assert.equal(ns.status, 201);
  assert.equal((await api(emu, "GET", "/authorizationRules/fleet")).status, 200);
  assert.equal((await api(emu, "DELETE", "/authorizationRules/fleet")).status, 204);
  assert.equal((await api(emu, "GET", "/authorizationRules/fleet")).status, 404);

  // delete rule, then HC (its listeners get 1001)
  assert.equal(
    (await api(emu, "DELETE", "/hybridConnections/site-0042/authorizationRules/listen")).status,
    204,
  );
  assert.equal(
    (await api(emu, "DELETE", "/hybridConnections/site-0042/authorizationRules/listen")).status,
    404,
  );
  assert.equal((await api(emu, "DELETE", "/hybridConnections/site-0042")).status, 204);
  assert.equal((await l1.closed).code, 1001);
  assert.equal((await api(emu, "DELETE", "/hybridConnections/site-0042")).status, 404);
});

test("admin API: names with '/' and '.', stats and faults over HTTP", async (t) => {
  const emu = await startRelayEmulator();
  t.after(() => emu.close());
  assert.equal((await api(emu, "PUT", "/hybridConnections/plant/line.1", {})).status, 201);
  assert.equal((await api(emu, "PUT", "/hybridConnections/plant%2Fline.2", {})).status, 201);
  assert.equal(
    (await api(emu, "PUT", "/hybridConnections/plant/line.1/authorizationRules/l", { rights: ["Listen"] }))
      .status,
    201,
  );
  assert.deepEqual((await api(emu, "GET", "/hybridConnections")).json, [
    { name: "plant/line.1", requiresClientAuthorization: true, listenerCount: 0 },
    { name: "plant/line.2", requiresClientAuthorization: true, listenerCount: 0 },
  ]);
  const l = await openListener(t, emu, "plant/line.1");
  const fault = await api(emu, "POST", "/faults", { action: "refuseRendezvous", status: 503 });
  assert.deepEqual(fault.json, { action: "refuseRendezvous", affected: 1 });
  const refused = await startSender(t, emu, "plant/line.1").catch((e: unknown) => e);
  assert.ok(refused instanceof UpgradeRefused);
  assert.equal(refused.status, 503);
  assert.equal(
    (
      await api(emu, "POST", "/faults", {
        action: "dropListener",
        hybridConnection: "plant/line.1",
        code: 1011,
      })
    ).status,
    200,
  );
  assert.equal((await l.closed).code, 1011);
  assert.equal((await api(emu, "POST", "/faults", { action: "explode" })).status, 400);
  const stats = (await api(emu, "GET", "/stats")).json as {
    connects: number;
    hybridConnections: Record<string, unknown>;
  };
  assert.equal(stats.connects, 1);
  assert.ok("plant/line.1" in stats.hybridConnections);
});

test("command: prints one listening line and exits 0 on SIGTERM", async (t) => {
  const dir = tempDir(t);
  const proc = spawnTs(t, "sim/relay-emulator/main.ts", ["--tls", "--dir", dir, "--hc", "site-1"]);
  const [line] = await proc.waitForLine(/^\{.*"event":"listening".*\}$/m);
  const info = JSON.parse(line) as Record<string, string>;
  assert.match(info.url!, /^wss:\/\/127\.0\.0\.1:\d+$/);
  assert.match(info.endpoint!, /^sb:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(info.caFile?.startsWith(dir), true);
  assert.equal(info.manageKeyName, "RootManageSharedAccessKey");
  assert.ok(info.manageKey);
  assert.equal(await proc.stop("SIGTERM"), 0);
});
