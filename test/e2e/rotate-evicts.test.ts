/**
 * Rotation evicts a stolen Listen key (issue 11 item 17), with every part a real process: an
 * attacker who copied the site's Listen key registers a listener of their own with a self-made
 * one-year token. Regenerating the key would not remove it (Azure: connections made with a token
 * stay until the token expires). `rotate-keys` moves the site to a new hybrid connection and
 * deletes the old one, which closes every listener on it: the attacker's control channel ends
 * with 1001, the old key no longer registers anywhere, and every client connection reaches the
 * site's real module, none the attacker.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, test } from "node:test";
import WebSocket from "ws";
import { audienceFor, createSasToken } from "../../lib/hyco/sas.ts";
import type { Fleet } from "../../sim/fleet.ts";
import { fileScope, siteServes, startE2eFleet, waitForSiteServing } from "../helpers/e2e.ts";
import { waitFor } from "../helpers/index.ts";

const scope = fileScope(after);

interface Attacker {
  ws: WebSocket;
  accepts: () => number;
  closed: Promise<number>;
}

/** A listener registered with `key` and a token valid for a year, counting accept commands. */
function listenAsAttacker(fleet: Fleet, hc: string, keyName: string, key: string): Promise<Attacker> {
  const token = createSasToken(audienceFor(fleet.relay.endpoint, hc), keyName, key, {
    ttlSeconds: 365 * 24 * 3600,
  });
  const url = `${fleet.relay.url}/$hc/${hc}?sb-hc-action=listen&sb-hc-token=${encodeURIComponent(token)}`;
  const ws = new WebSocket(url, { ca: readFileSync(fleet.relay.caFile) });
  let accepts = 0;
  ws.on("message", (data) => {
    if (String(data).includes('"accept"')) accepts += 1;
  });
  const closed = new Promise<number>((r) => ws.once("close", (code) => r(code)));
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve({ ws, accepts: () => accepts, closed }));
    ws.once("unexpected-response", (_req, res) => reject(new Error(`listen refused: ${res.statusCode}`)));
    ws.once("error", reject);
  });
}

test("after rotate-keys a listener holding the old Listen key is closed and gets no connection", async () => {
  const fleet = await startE2eFleet(scope, { sites: 1 });
  await waitForSiteServing(fleet, "plant-1");
  const relay = (await fleet.moduleTwin("plant-1")).desired.relay as {
    hybridConnection: string;
    sasKeyName: string;
    sasKey: string;
  };
  const attacker = await listenAsAttacker(fleet, relay.hybridConnection, relay.sasKeyName, relay.sasKey);
  scope.after(() => attacker.ws.terminate());

  const rotated = await fleet.api<{ listenKeyFingerprint: string }>("POST", "/api/sites/plant-1/rotate-keys");
  assert.ok(rotated.listenKeyFingerprint);
  const code = await Promise.race([
    attacker.closed,
    new Promise<string>((r) => setTimeout(() => r("still registered"), 20_000)),
  ]);
  assert.equal(code, 1001, "the old hybrid connection's deletion closed the attacker's listener");

  const now = (await fleet.moduleTwin("plant-1")).desired.relay as {
    hybridConnection: string;
    sasKey: string;
  };
  assert.notEqual(now.hybridConnection, relay.hybridConnection, "the site moved to a new hybrid connection");
  await assert.rejects(
    listenAsAttacker(fleet, relay.hybridConnection, relay.sasKeyName, relay.sasKey),
    /listen refused: 404/,
    "the old hybrid connection is gone",
  );
  await assert.rejects(
    listenAsAttacker(fleet, now.hybridConnection, relay.sasKeyName, relay.sasKey),
    /listen refused: 401/,
    "the old key does not open the new one",
  );

  await fleet.reloadGateways();
  await waitForSiteServing(fleet, "plant-1");
  let served = 0;
  for (let i = 0; i < 20; i++)
    if (await siteServes(fleet.sites.get("plant-1")?.publicPorts.web ?? 0, "plant-1")) served++;
  assert.equal(served, 20, "every connection after the rotation reaches the site's own module");
  assert.equal(attacker.accepts(), 0, "the attacker received no connection after the rotation");
  const stats = await fleet.relayStats();
  assert.equal(
    stats.hybridConnections[relay.hybridConnection],
    undefined,
    "the old hybrid connection is deleted",
  );
  assert.ok(
    (stats.hybridConnections[now.hybridConnection]?.listeners ?? 0) >= 1,
    "the module listens on the new one",
  );
  await waitFor(
    async () =>
      ((await fleet.moduleTwin("plant-1")).reported.relay as { status?: string } | undefined)?.status ===
      "online",
    "the module to report online",
  );
});
