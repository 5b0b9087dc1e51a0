import assert from "node:assert/strict";
import { test } from "node:test";
import {
  type ArmHybridConnections,
  createArmRelayAdmin,
  relayAdminsFromEnv,
} from "../../cloud/functions/src/relay-admin/index.ts";

/** A fake of the ARM client's hybridConnections group: records calls, keeps rules in a map. */
function fakeArm() {
  const calls: string[] = [];
  const rules = new Map<string, { rights: string[]; primaryKey: string; secondaryKey: string }>();
  let n = 0;
  const notFound = () => Object.assign(new Error("NotFound"), { statusCode: 404 });
  const fake = {
    async createOrUpdate(
      rg: string,
      ns: string,
      name: string,
      params: { requiresClientAuthorization?: boolean },
    ) {
      calls.push(`createOrUpdate ${rg}/${ns}/${name} auth=${params.requiresClientAuthorization}`);
      return { name };
    },
    async delete(_rg: string, _ns: string, name: string) {
      calls.push(`delete ${name}`);
      if (name === "missing") throw notFound();
    },
    async createOrUpdateAuthorizationRule(
      _rg: string,
      _ns: string,
      hc: string,
      rule: string,
      p: { rights: string[] },
    ) {
      calls.push(`rule ${hc}/${rule} ${p.rights.join("+")}`);
      const existing = rules.get(`${hc}/${rule}`);
      rules.set(`${hc}/${rule}`, {
        rights: p.rights,
        primaryKey: existing?.primaryKey ?? `p${n++}`,
        secondaryKey: existing?.secondaryKey ?? `s${n++}`,
      });
      return { name: rule, rights: p.rights };
    },
    async getAuthorizationRule(_rg: string, _ns: string, hc: string, rule: string) {
      const r = rules.get(`${hc}/${rule}`);
      if (!r) throw notFound();
      return { name: rule, rights: r.rights };
    },
    async listKeys(_rg: string, _ns: string, hc: string, rule: string) {
      const r = rules.get(`${hc}/${rule}`);
      if (!r) throw notFound();
      return { keyName: rule, primaryKey: r.primaryKey, secondaryKey: r.secondaryKey };
    },
    async regenerateKeys(_rg: string, _ns: string, hc: string, rule: string, p: { keyType: string }) {
      calls.push(`regenerate ${hc}/${rule} ${p.keyType}`);
      const r = rules.get(`${hc}/${rule}`);
      if (!r) throw notFound();
      if (p.keyType === "PrimaryKey") r.primaryKey = `p${n++}`;
      else r.secondaryKey = `s${n++}`;
      return { keyName: rule, primaryKey: r.primaryKey, secondaryKey: r.secondaryKey };
    },
    async deleteAuthorizationRule(_rg: string, _ns: string, hc: string, rule: string) {
      calls.push(`deleteRule ${hc}/${rule}`);
      if (!rules.delete(`${hc}/${rule}`)) throw notFound();
    },
    listByNamespace() {
      return (async function* () {
        yield { name: "site-a", listenerCount: 1 };
        yield { name: undefined };
      })();
    },
  };
  return { calls, fake: fake as unknown as ArmHybridConnections };
}

test("ARM relay admin maps every operation onto the ARM client", async () => {
  const { calls, fake } = fakeArm();
  const admin = createArmRelayAdmin({ resourceGroup: "rg", namespace: "ns1", hybridConnections: fake });
  assert.equal(admin.endpoint, "sb://ns1.servicebus.windows.net");
  await admin.ensureHybridConnection("site-a");
  assert.equal(calls.at(-1), "createOrUpdate rg/ns1/site-a auth=true");
  const listen = await admin.ensureRule("site-a", "listen", ["Listen"]);
  assert.deepEqual(listen.rights, ["Listen"]);
  const again = await admin.ensureRule("site-a", "listen", ["Listen"]);
  assert.equal(again.primaryKey, listen.primaryKey, "keys survive an idempotent ensure");
  const rotated = await admin.regenerateKey("site-a", "listen", "secondary");
  assert.equal(rotated.primaryKey, listen.primaryKey);
  assert.notEqual(rotated.secondaryKey, listen.secondaryKey);
  assert.equal(calls.at(-1), "regenerate site-a/listen SecondaryKey");
  assert.equal(await admin.getRule("site-a", "nope"), undefined);
  await admin.deleteRule("site-a", "listen");
  await admin.deleteRule("site-a", "listen"); // absent is fine
  assert.equal(await admin.deleteHybridConnection("missing"), false);
  assert.equal(await admin.deleteHybridConnection("site-a"), true);
  assert.deepEqual(await admin.list(), [{ name: "site-a", listenerCount: 1 }]);
});

test("ARM failures become one clear RF_ERR_RELAYADMIN_FAILED sentence", async () => {
  const { fake } = fakeArm();
  const broken = {
    ...fake,
    createOrUpdate: async () => {
      throw Object.assign(new Error("AuthorizationFailed"), { statusCode: 403 });
    },
  } as unknown as ArmHybridConnections;
  const admin = createArmRelayAdmin({ resourceGroup: "rg", namespace: "ns", hybridConnections: broken });
  await assert.rejects(admin.ensureHybridConnection("site-x"), {
    code: "RF_ERR_RELAYADMIN_FAILED",
    message: /could not create hybrid connection site-x: AuthorizationFailed/,
  });
});

test("without ARM, RELAY_NAMESPACES lists relay emulators (one namespace each) sharing the Manage key", async () => {
  const key = { RELAY_MANAGE_KEY_NAME: "RootManageSharedAccessKey", RELAY_MANAGE_KEY: "a2V5" };
  const admins = await relayAdminsFromEnv({
    ...key,
    RELAY_ENDPOINT: "https://127.0.0.1:1001",
    RELAY_NAMESPACES: "https://127.0.0.1:1001, https://127.0.0.1:1002,https://127.0.0.1:1001",
  });
  assert.deepEqual(
    admins.map((a) => a.endpoint),
    ["https://127.0.0.1:1001", "https://127.0.0.1:1002"],
  );
  const one = await relayAdminsFromEnv({ ...key, RELAY_ENDPOINT: "https://127.0.0.1:1003" });
  assert.deepEqual(
    one.map((a) => a.endpoint),
    ["https://127.0.0.1:1003"],
    "no list: RELAY_ENDPOINT alone",
  );
});
