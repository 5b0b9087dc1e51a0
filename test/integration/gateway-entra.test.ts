/**
 * Gateways signing in to Azure Relay with their managed identity (real processes): each gateway
 * runs the unmodified @azure/identity ManagedIdentityCredential against the local identity
 * emulator with its own identity, and the ledger's site row holds no key. The one with Azure
 * Relay Sender on the site's hybrid connection tunnels; the one without is refused (403) and
 * reports it (metric, readyz). With 4-second tokens a transfer keeps running across several
 * refreshes and new tunnels use the new tokens; a failing refresh shows in the metrics and in
 * readyz (degraded while the old token is valid, 503 once it expired) and recovers.
 */
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { test } from "node:test";
import { ROLES } from "../../lib/entra/roles.ts";
import { startIdentityEmulator } from "../../sim/identity-emulator/index.ts";
import { sleep, waitFor } from "../helpers/index.ts";
import {
  closedBy,
  echoServer,
  freePort,
  randomBytes,
  roundTrip,
  sha,
  startGateway,
  startHarness,
  startModuleSite,
} from "./gateway-harness.ts";

function dial(t: { after(fn: () => unknown): void }, host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host }, () => resolve(s));
    s.once("error", reject);
    t.after(() => s.destroy());
  });
}

test("managed identities: Sender tunnels across token refreshes, no role is refused (403)", {
  timeout: 120_000,
}, async (t) => {
  const idp = await startIdentityEmulator({
    identities: ["gateway-a", "gateway-b"],
    tokenLifetimeSeconds: 4,
  });
  t.after(() => idp.close());
  const h = await startHarness(t, "s1", { trustedIssuers: [idp.trust] });
  // The ledger as the rollout writes it with Entra ID: no Send rule name, no key.
  await h.ledger.putSite({
    siteId: h.siteId,
    hybridConnection: `site-${h.siteId}`,
    relayEndpoint: h.relay.url,
    deviceId: h.siteId,
    createdAt: new Date().toISOString(),
  });
  h.relay.admin.putRoleAssignment("gateway-a-sender", {
    principalId: idp.identity("gateway-a")!.principalId,
    roleDefinitionId: ROLES.relaySender.id,
    scope: `/subscriptions/x/resourceGroups/y/providers/Microsoft.Relay/namespaces/ns/hybridConnections/site-${h.siteId}`,
  });
  const echo = await echoServer(t);
  await startModuleSite(t, h, { echo: { target: `127.0.0.1:${echo.port}` } });
  const port = await freePort();
  await h.ledger.allocate({ siteId: h.siteId, portName: "echo", endpoint: { kind: "tcp", port } });
  const entra = (name: string) => ({ GATEWAY_RELAY_AUTH: "entra", ...idp.envFor(name) });
  const [a, b] = await Promise.all([
    // No standby connections on A: a standby opened before its token expired would (rightly, as
    // on Azure) still carry a tunnel, and this test wants every tunnel to present a fresh token.
    startGateway(t, h, {
      ...entra("gateway-a"),
      GATEWAY_BIND_HOST: "127.0.0.1",
      GATEWAY_STANDBY_CONNECTIONS: "0",
    }),
    startGateway(t, h, { ...entra("gateway-b"), GATEWAY_BIND_HOST: "127.0.0.2" }),
  ]);

  // Gateway A tunnels with its identity.
  const payload = randomBytes(256 * 1024);
  assert.equal(sha(await roundTrip(await dial(t, "127.0.0.1", port), payload)), sha(payload));
  const readyA = JSON.parse((await a.admin("/readyz")).text);
  assert.equal(readyA.relayAuth.mode, "entra");
  assert.equal(readyA.relayAuth.token, "ok");

  // Gateway B's identity has no role: the relay refuses it with 403, B closes the client and reports it.
  const refusedClient = await dial(t, "127.0.0.2", port);
  refusedClient.write("hello");
  assert.equal((await closedBy(refusedClient)).length, 0);
  await waitFor(
    async () => (await b.metric("gateway_relay_auth_refusals_total", { status: "403" })) >= 1,
    "gateway B counts the 403",
  );
  const readyB = JSON.parse((await b.admin("/readyz")).text);
  assert.equal(readyB.relayAuth.lastRefusal.status, 403);
  assert.equal(await a.metric("gateway_relay_auth_refusals_total", { status: "403" }), 0);
  assert.ok(!/eyJ[A-Za-z0-9_-]{10,}\.eyJ/.test(b.proc.stdout()), "no token in gateway B's log");

  // A long transfer on one tunnel while tokens (4 s) are refreshed several times underneath.
  const issuedBefore = idp.stats().issued["gateway-a"] ?? 0;
  const long = await dial(t, "127.0.0.1", port);
  const received: Buffer[] = [];
  long.on("data", (c: Buffer) => received.push(c));
  const sent: Buffer[] = [];
  for (let i = 0; i < 40; i++) {
    const chunk = randomBytes(32 * 1024);
    sent.push(chunk);
    long.write(chunk);
    await sleep(250);
  }
  await waitFor(() => Buffer.concat(received).length >= 40 * 32 * 1024, "the long transfer echoed");
  assert.equal(sha(Buffer.concat(received)), sha(Buffer.concat(sent)), "byte-exact across refreshes");
  long.end();
  assert.ok((idp.stats().issued["gateway-a"] ?? 0) - issuedBefore >= 3, "at least three refreshes during it");
  assert.ok((await a.metric("gateway_relay_token_refreshes_total", { result: "ok" })) >= 4);
  // A new tunnel now needs a token issued after the transfer started.
  assert.equal(sha(await roundTrip(await dial(t, "127.0.0.1", port), payload)), sha(payload));

  // The identity endpoint fails: reported, degraded while the token is valid, 503 once it expired.
  idp.failTokens("gateway-a", true, 403);
  await waitFor(
    async () => (await a.metric("gateway_relay_token_refreshes_total", { result: "failed" })) >= 1,
    "a failed refresh is counted",
  );
  await waitFor(async () => (await a.admin("/readyz")).status === 503, "readyz 503 once no token is valid", {
    timeoutMs: 15_000,
  });
  const expired = JSON.parse((await a.admin("/readyz")).text);
  assert.equal(expired.relayAuth.token, "expired");
  assert.match(expired.relayAuth.lastError, /ManagedIdentityCredential/);
  const noToken = await dial(t, "127.0.0.1", port);
  noToken.write("x");
  assert.equal((await closedBy(noToken)).length, 0, "no tunnel without a valid token");
  idp.failTokens("gateway-a", false);
  await waitFor(
    async () => (await a.admin("/readyz")).status === 200,
    "recovers after the endpoint is back",
    { timeoutMs: 40_000 },
  );
  assert.equal(sha(await roundTrip(await dial(t, "127.0.0.1", port), payload)), sha(payload));
  assert.ok(!/eyJ[A-Za-z0-9_-]{10,}\.eyJ/.test(a.proc.stdout()), "no token in gateway A's log");
});
