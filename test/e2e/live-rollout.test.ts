/**
 * Issue 7 "live rollout" and issue 6's missing proofs, with every part a real process: a site
 * onboarded through the rollout API while another site's transfer runs (that transfer is
 * byte-exact and never reset; the new site serves within seconds); a mapping added with
 * `PUT /api/sites/{id}/mappings/{name}` carries a real connection once the module runs; and
 * `POST /api/sites/{id}/rotate-keys` during a long transfer: the transfer survives, the old
 * Listen key is revoked, and new connections work with the new Listen key while the gateway
 * signs in with its managed identity.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import type { IncomingMessage } from "node:http";
import { after, before, test } from "node:test";
import WebSocket from "ws";
import { audienceFor, createSasToken } from "../../lib/hyco/sas.ts";
import type { Fleet, SiteView } from "../../sim/fleet.ts";
import {
  bannerService,
  echoExact,
  fileScope,
  keystream,
  type RunningTransfer,
  sha256,
  siteServes,
  startE2eFleet,
  startEchoTransfer,
  waitForSiteServing,
} from "../helpers/e2e.ts";
import { waitFor } from "../helpers/index.ts";

const MiB = 1024 * 1024;
const scope = fileScope(after);
let fleet: Fleet;

before(async () => {
  fleet = await startE2eFleet(scope, { sites: 1 });
  await waitForSiteServing(fleet, "plant-1");
});

function echoPortOf(siteId: string): number {
  const port = fleet.sites.get(siteId)?.publicPorts.echo;
  assert.ok(port, `${siteId} has a public echo port`);
  return port;
}

/** Waits until `transfer` has moved at least `bytes` more each way than it had. */
async function flowing(transfer: RunningTransfer, bytes: number, what: string): Promise<void> {
  const from = transfer.received();
  await waitFor(() => transfer.received() >= from + bytes, `${what}: ${bytes} B more echoed`, {
    timeoutMs: 30_000,
  });
}

async function assertIntact(transfer: RunningTransfer): Promise<void> {
  const r = await transfer.finish();
  assert.equal(r.ending, "end", "the transfer ended normally (no reset, no early close)");
  assert.equal(r.receivedBytes, r.sentBytes);
  assert.equal(r.receivedSha, r.sentSha, "byte-exact both ways");
}

test("a site onboarded during another site's transfer: the transfer is unaffected, the new site serves within seconds", async (t) => {
  const transfer = await startEchoTransfer(echoPortOf("plant-1"), {
    bytesPerSecond: 4 * MiB,
    chunkBytes: 64 * 1024,
  });
  await flowing(transfer, MiB, "before onboarding");

  const started = Date.now();
  const site = await fleet.addSite("plant-2");
  const web = site.publicPorts.web;
  assert.ok(web, "the rollout API allocated a public port for the new site's web mapping");
  await waitFor(() => siteServes(web, "plant-2"), "plant-2's page through the gateway", {
    timeoutMs: 30_000,
    intervalMs: 100,
  });
  const seconds = (Date.now() - started) / 1000;
  t.diagnostic(`plant-2 onboarded and serving after ${seconds} s`);
  // "Within seconds": onboarding, module start and first page, with a margin for a busy machine.
  assert.ok(seconds < 30, `plant-2 took ${seconds} s to serve`);
  const data = keystream()(512 * 1024);
  assert.equal(sha256(await echoExact(echoPortOf("plant-2"), data)), sha256(data));

  await flowing(transfer, MiB, "after onboarding");
  await assertIntact(transfer);
});

test("a mapping added with PUT /api/sites/{id}/mappings/{name} carries a real connection", async (t) => {
  // A fresh on-prem service with its own greeting, so the answer can only come from it.
  const { port: targetPort, banner } = await bannerService(t);

  const view = await fleet.api<SiteView>("PUT", "/api/sites/plant-1/mappings/svc", {
    target: `127.0.0.1:${targetPort}`,
  });
  const publicPort = view.mappings.svc?.publicPort;
  assert.ok(publicPort, "the new mapping got a public port");
  await fleet.reloadGateways();

  const payload = keystream()(200_000);
  const expected = Buffer.concat([Buffer.from(banner), payload]);
  // The module applies the desired patch asynchronously: retry until the mapping exists there.
  const got = await waitFor(
    () => echoExact(publicPort, payload).then((b) => (b.length >= expected.length ? b : undefined)),
    "a connection through the new mapping",
    { timeoutMs: 30_000, intervalMs: 200 },
  );
  assert.equal(sha256(got.subarray(0, expected.length)), sha256(expected));

  const reported = await waitFor(async () => {
    const m = ((await fleet.moduleTwin("plant-1")).reported.mappings ?? {}) as Record<
      string,
      { state?: string; totalConnections?: number }
    >;
    return m.svc?.state === "active" && (m.svc.totalConnections ?? 0) >= 1 ? m.svc : undefined;
  }, "the module to report the new mapping active with its connection");
  assert.equal(reported.state, "active");
});

/** Status of a listen attempt on hybrid connection `hc` with `key`: 101 or the refusal. */
function listenStatus(hc: string, keyName: string, key: string): Promise<number> {
  const token = createSasToken(audienceFor(fleet.relay.endpoint, hc), keyName, key);
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${fleet.relay.url}/$hc/${hc}?sb-hc-action=listen`, {
      headers: { ServiceBusAuthorization: token },
      ca: readFileSync(fleet.relay.caFile),
    });
    ws.once("unexpected-response", (_req, res: IncomingMessage) => {
      res.resume();
      ws.terminate();
      resolve(res.statusCode ?? 0);
    });
    ws.once("open", () => {
      ws.close();
      resolve(101);
    });
    ws.once("error", (err) => reject(err));
  });
}

test("rotate-keys during a long transfer: the transfer survives, old Listen key revoked, new connections work", async () => {
  const before = await fleet.moduleTwin("plant-1");
  const oldRelay = before.desired.relay as { hybridConnection: string; sasKeyName: string; sasKey: string };
  const oldFingerprint = (before.reported.relay as { keyFingerprint?: string }).keyFingerprint;
  assert.ok(oldFingerprint);

  const transfer = await startEchoTransfer(echoPortOf("plant-1"), {
    bytesPerSecond: 4 * MiB,
    chunkBytes: 64 * 1024,
  });
  await flowing(transfer, MiB, "before rotation");

  const result = await fleet.api<{ listenKeyFingerprint: string; sendKeyFingerprint?: string }>(
    "POST",
    "/api/sites/plant-1/rotate-keys",
  );
  await fleet.reloadGateways();
  assert.notEqual(result.listenKeyFingerprint, oldFingerprint);
  const reported = (await fleet.moduleTwin("plant-1")).reported.relay as {
    keyFingerprint?: string;
    status?: string;
  };
  assert.equal(reported.keyFingerprint, result.listenKeyFingerprint, "the module reports the new key");

  // The old Listen key no longer opens a listener: rotation moved the site to a new hybrid
  // connection (ADR 0009), deleted the old one, and the old key is not a rule of the new one.
  const newRelay = (await fleet.moduleTwin("plant-1")).desired.relay as { hybridConnection: string };
  assert.notEqual(newRelay.hybridConnection, oldRelay.hybridConnection);
  assert.equal(await listenStatus(oldRelay.hybridConnection, oldRelay.sasKeyName, oldRelay.sasKey), 404);
  assert.equal(await listenStatus(newRelay.hybridConnection, oldRelay.sasKeyName, oldRelay.sasKey), 401);

  // The transfer that started under the old keys keeps flowing and ends intact.
  await flowing(transfer, MiB, "after rotation");
  await assertIntact(transfer);

  // New connections: the module listens with the new Listen key on the new hybrid connection; the
  // gateway followed the ledger there and signs in with its managed identity (the simulation's
  // default, as in Azure: no Send rule exists, so rotation had no Send key to hand out).
  assert.equal(result.sendKeyFingerprint, undefined, "no Send key was made");
  const gatewayReady = (await (
    await fetch(`http://127.0.0.1:${fleet.gateways[0]?.adminPort}/readyz`)
  ).json()) as { relayAuth?: { mode?: string; token?: string } };
  assert.deepEqual(
    { mode: gatewayReady.relayAuth?.mode, token: gatewayReady.relayAuth?.token },
    { mode: "entra", token: "ok" },
  );
  for (let i = 0; i < 5; i++) {
    const data = keystream()(64 * 1024 + i);
    assert.equal(sha256(await echoExact(echoPortOf("plant-1"), data)), sha256(data), `connection ${i}`);
  }
  assert.ok(await siteServes(fleet.sites.get("plant-1")?.publicPorts.web ?? 0, "plant-1"));
});
