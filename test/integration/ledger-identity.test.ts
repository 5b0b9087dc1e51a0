/**
 * The port ledger by managed identity: the unmodified @azure/identity ManagedIdentityCredential
 * gets a storage token from the local identity emulator and the ledger (the same code the
 * gateway and the rollout build from LEDGER_TABLE_URL) works against Azurite over HTTPS with no
 * account key. Azurite's own checks refuse an expired token and one for another audience (it
 * checks neither signature nor roles: docs/adr/0010).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { type AccessToken, ManagedIdentityCredential, type TokenCredential } from "@azure/identity";
import { AUDIENCES } from "../../lib/entra/roles.ts";
import { createLedgerOnClient, createTableClientWithCredential, statusOf } from "../../lib/ledger/index.ts";
import { startAzurite } from "../../sim/azurite.ts";
import { startIdentityEmulator } from "../../sim/identity-emulator/index.ts";

test("the ledger by managed identity over HTTPS; expired and wrong-audience tokens refused", {
  timeout: 90_000,
}, async (t) => {
  const [idp, azurite] = await Promise.all([
    startIdentityEmulator({ identities: ["rollout"] }),
    startAzurite({ oauth: true }),
  ]);
  t.after(() => idp.close());
  t.after(() => azurite.close());
  assert.match(azurite.tableEndpoint, /^https:\/\//);
  const ca = readFileSync(azurite.caFile ?? "");

  // This process is the app: its identity comes from IDENTITY_ENDPOINT / IDENTITY_HEADER.
  const saved = {
    IDENTITY_ENDPOINT: process.env.IDENTITY_ENDPOINT,
    IDENTITY_HEADER: process.env.IDENTITY_HEADER,
  };
  Object.assign(process.env, idp.envFor("rollout"));
  t.after(() => {
    for (const [k, v] of Object.entries(saved))
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
  });
  const credential = new ManagedIdentityCredential();
  const ledger = createLedgerOnClient(
    createTableClientWithCredential(azurite.tableEndpoint, "portledger", credential, { ca }),
    { ranges: [{ from: 46000, to: 46009 }] },
  );
  await ledger.ensureTable();
  const row = {
    siteId: "plant-1",
    hybridConnection: "site-plant-1",
    relayEndpoint: "sb://127.0.0.1:1",
    deviceId: "plant-1",
    createdAt: new Date().toISOString(),
  };
  await ledger.putSite(row);
  const read = await ledger.getSite("plant-1");
  assert.equal(read?.hybridConnection, row.hybridConnection);
  assert.equal(read?.createdAt, row.createdAt);
  const route = await ledger.allocate({ siteId: "plant-1", portName: "web", endpoint: { kind: "tcp" } });
  assert.ok(route.port >= 46000 && route.port <= 46009);
  assert.ok((idp.stats().issued.rollout ?? 0) >= 1, "the identity emulator issued the storage token");

  // Tokens Azurite must refuse: one that expired, one for Azure Relay instead of Storage.
  const now = Math.floor(Date.now() / 1000);
  const fixed = (token: string): TokenCredential => ({
    getToken: async (): Promise<AccessToken> => ({ token, expiresOnTimestamp: Date.now() + 3_600_000 }),
  });
  const refusals: Record<string, number | undefined> = {};
  for (const [what, token] of [
    [
      "expired",
      idp.issueToken("rollout", AUDIENCES.storage, { iat: now - 7200, nbf: now - 7200, exp: now - 60 }),
    ],
    ["wrong audience", idp.issueToken("rollout", AUDIENCES.relay)],
  ] as const) {
    const client = createTableClientWithCredential(azurite.tableEndpoint, "portledger", fixed(token), { ca });
    refusals[what] = await client.getEntity("site", "plant-1").then(
      () => 200,
      (err: unknown) => statusOf(err),
    );
  }
  assert.deepEqual(refusals, { expired: 403, "wrong audience": 403 });
});
