/**
 * Microsoft Entra ID on the relay emulator: a token from the unmodified @azure/identity
 * ManagedIdentityCredential (App Service protocol, against the local identity emulator) opens a
 * sender connection when its principal holds Azure Relay Sender at the namespace or entity; the
 * emulator answers 403 without the role (or with Listener only, or scoped to another entity) and
 * 401 for an expired, wrong-audience, foreign-issuer or tampered token. Role assignments go
 * through the admin HTTP API and survive a restart with a state file.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { AUDIENCES, ROLES } from "../../lib/entra/roles.ts";
import { startIdentityEmulator } from "../../sim/identity-emulator/index.ts";
import { startRelayEmulator } from "../../sim/relay-emulator/index.ts";
import { tempDir } from "../helpers/index.ts";
import {
  hcUrl,
  openListener,
  openWs,
  refusedStatus,
  rootCredentials,
  tokenFor,
} from "../helpers/relay-emulator-clients.ts";

test("bearer tokens: Sender role tunnels, no role 403, expired / wrong audience / forged 401", async (t) => {
  const idp = await startIdentityEmulator({ identities: ["gateway-a", "gateway-b"] });
  t.after(() => idp.close());
  const other = await startIdentityEmulator({ identities: ["gateway-a"] });
  t.after(() => other.close());
  const emu = await startRelayEmulator({ trustedIssuers: [idp.trust] });
  t.after(() => emu.close());
  emu.admin.putHybridConnection("site-a");
  emu.admin.putHybridConnection("site-b");
  const a = idp.identity("gateway-a")!;
  const b = idp.identity("gateway-b")!;

  // The unmodified credential, as the gateway process uses it (App Service managed identity).
  Object.assign(process.env, idp.envFor("gateway-a"));
  const { ManagedIdentityCredential } = await import("@azure/identity");
  const credential = new ManagedIdentityCredential();
  const token = (await credential.getToken(`${AUDIENCES.relay}/.default`)).token;
  const connect = (hc: string, value: string) =>
    refusedStatus(t, emu, hcUrl(emu, hc, "sb-hc-action=connect"), {
      headers: { ServiceBusAuthorization: value },
    });

  // Valid token, no role assignment yet: 403.
  assert.equal((await connect("site-a", token)).status, 403);
  // Listener role does not grant Send.
  emu.admin.putRoleAssignment("a-listen", {
    principalId: a.principalId,
    roleDefinitionId: ROLES.relayListener.name,
  });
  assert.equal((await connect("site-a", token)).status, 403);

  // Sender on site-a only (entity scope, ARM id form), through the admin HTTP API.
  const scope =
    "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Relay/namespaces/ns/hybridConnections/site-a";
  const put = await fetch(`${emu.url.replace(/^ws/, "http")}/$admin/roleAssignments/a-send`, {
    method: "PUT",
    headers: {
      authorization: token,
      "content-type": "application/json",
    },
    body: JSON.stringify({ principalId: a.principalId, roleDefinitionId: ROLES.relaySender.id, scope }),
  });
  assert.equal(put.status, 403, "a Sender-less bearer token cannot manage the namespace");
  const adminAuth = tokenFor(emu, "", rootCredentials(emu));
  const put2 = await fetch(`${emu.url.replace(/^ws/, "http")}/$admin/roleAssignments/a-send`, {
    method: "PUT",
    headers: { authorization: adminAuth, "content-type": "application/json" },
    body: JSON.stringify({
      principalId: a.principalId,
      roleDefinitionId: `/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/${ROLES.relaySender.id}`,
      scope,
    }),
  });
  assert.equal(put2.status, 201);
  const bad = await fetch(`${emu.url.replace(/^ws/, "http")}/$admin/roleAssignments/x`, {
    method: "PUT",
    headers: { authorization: adminAuth, "content-type": "application/json" },
    body: JSON.stringify({ principalId: a.principalId, roleDefinitionId: "Owner" }),
  });
  assert.equal(bad.status, 400, "a role that is not an Azure Relay role is refused");
  assert.equal(emu.admin.listRoleAssignments().length, 2, "the refused assignment left nothing behind");

  // With a listener on site-a, the bearer sender is accepted and relayed (raw JWT, as .NET sends it).
  const listener = await openListener(t, emu, "site-a");
  const senderP = openWs(t, emu, hcUrl(emu, "site-a", "sb-hc-action=connect"), {
    headers: { ServiceBusAuthorization: token },
  });
  const accept = await listener.nextAccept();
  assert.ok(
    !Object.keys(accept.connectHeaders).some((h) => h.toLowerCase() === "servicebusauthorization"),
    "the token is not forwarded to the listener",
  );
  await openWs(t, emu, accept.address);
  const sender = await senderP;
  assert.equal(sender.readyState, sender.OPEN);
  // `Bearer <jwt>` in Authorization works too; the entity scope does not cover site-b.
  const bearerHeader = openWs(t, emu, hcUrl(emu, "site-a", "sb-hc-action=connect"), {
    headers: { Authorization: `Bearer ${token}` },
  });
  await openWs(t, emu, (await listener.nextAccept()).address);
  await bearerHeader;
  assert.equal((await connect("site-b", token)).status, 403);

  // Another principal (gateway-b) with no role: 403; then a namespace-scope Sender: it may send anywhere.
  const tokenB = idp.issueToken("gateway-b", AUDIENCES.relay);
  assert.equal((await connect("site-b", tokenB)).status, 403);
  emu.admin.putRoleAssignment("b-send", {
    principalId: b.principalId,
    roleDefinitionId: ROLES.relaySender.id,
  });
  assert.equal((await connect("site-b", tokenB)).status, 404, "authorized: no listener on site-b");

  // Expired, wrong audience, untrusted issuer, tampered: 401 whatever the roles.
  const now = Math.floor(Date.now() / 1000);
  const expired = idp.issueToken("gateway-a", AUDIENCES.relay, {
    iat: now - 7200,
    nbf: now - 7200,
    exp: now - 60,
  });
  const expiredRefusal = await connect("site-a", expired);
  assert.equal(expiredRefusal.status, 401);
  assert.match(expiredRefusal.statusMessage ?? "", /ExpiredToken/);
  const wrongAudience = await connect("site-a", idp.issueToken("gateway-a", AUDIENCES.iotHub));
  assert.equal(wrongAudience.status, 401);
  assert.match(wrongAudience.statusMessage ?? "", /InvalidAudience/);
  assert.equal((await connect("site-a", other.issueToken("gateway-a", AUDIENCES.relay))).status, 401);
  const [h, p] = token.split(".");
  const claims = JSON.parse(Buffer.from(p!, "base64url").toString());
  const forged = `${h}.${Buffer.from(JSON.stringify({ ...claims, oid: b.principalId })).toString("base64url")}.${token.split(".")[2]}`;
  assert.equal((await connect("site-a", forged)).status, 401);
});

test("role assignments persist in the state file; no trusted issuer means bearer tokens are refused", async (t) => {
  const idp = await startIdentityEmulator({ identities: ["gw"] });
  t.after(() => idp.close());
  const stateFile = join(tempDir(t), "ns.json");
  const first = await startRelayEmulator({ stateFile, trustedIssuers: [idp.trust] });
  first.admin.putHybridConnection("site-1");
  first.admin.putRoleAssignment("gw-send", {
    principalId: idp.identity("gw")!.principalId,
    roleDefinitionId: ROLES.relaySender.id,
  });
  await first.close();
  const second = await startRelayEmulator({ stateFile, trustedIssuers: [idp.trust] });
  t.after(() => second.close());
  assert.deepEqual(
    second.admin.listRoleAssignments().map((a) => [a.id, a.roleName]),
    [["gw-send", "Azure Relay Sender"]],
  );
  const token = idp.issueToken("gw", AUDIENCES.relay);
  const connect = (emu: typeof second) =>
    refusedStatus(t, emu, hcUrl(emu, "site-1", "sb-hc-action=connect"), {
      headers: { ServiceBusAuthorization: token },
    });
  assert.equal(
    (await connect(second)).status,
    404,
    "authorized after the restart: only the listener is missing",
  );
  const noTrust = await startRelayEmulator({ hybridConnections: [{ name: "site-1" }] });
  t.after(() => noTrust.close());
  assert.equal((await connect(noTrust)).status, 401);
});
