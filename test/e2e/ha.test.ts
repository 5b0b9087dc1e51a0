/**
 * Issue 7 HA, every part a real process: two relayListener instances for one site, one killed
 * (SIGKILL), and every new connection still works; two gateways (127.0.0.1 and 127.0.0.2, the same
 * public ports), one killed, and the other serves every route of every site.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { Fleet } from "../../sim/fleet.ts";
import {
  connectTcp,
  echoExact,
  fileScope,
  keystream,
  sha256,
  siteServes,
  startE2eFleet,
  waitForSiteServing,
} from "../helpers/e2e.ts";
import { waitFor } from "../helpers/index.ts";

const scope = fileScope(after);
let fleet: Fleet;
const SITES = ["plant-1", "plant-2"];

before(async () => {
  fleet = await startE2eFleet(scope, { sites: 2, gateways: 2, modulesPerSite: 2 });
  for (const siteId of SITES) for (const g of fleet.gateways) await waitForSiteServing(fleet, siteId, g.host);
});

async function listenersOf(siteId: string): Promise<number> {
  return (await fleet.relayStats()).hybridConnections[`site-${siteId}`]?.listeners ?? 0;
}

/** Every mapping of every site through the gateway on `host`, byte-exact / the right page. */
async function everyRoute(host: string): Promise<string[]> {
  const failures: string[] = [];
  for (const siteId of SITES) {
    const ports = fleet.sites.get(siteId)?.publicPorts ?? {};
    if (!(await siteServes(ports.web ?? 0, siteId, host))) failures.push(`${host} ${siteId}/web`);
    const data = keystream()(256 * 1024);
    try {
      const got = await echoExact(ports.echo ?? 0, data, host, 20_000);
      if (sha256(got) !== sha256(data)) failures.push(`${host} ${siteId}/echo: different bytes`);
    } catch (err) {
      failures.push(`${host} ${siteId}/echo: ${String(err)}`);
    }
  }
  return failures;
}

test("two module instances for a site, one killed: all of N new connections succeed", async (t) => {
  const perInstance = await waitFor(async () => {
    const n = await listenersOf("plant-1");
    return n >= 2 && n % 2 === 0 ? n / 2 : undefined;
  }, "both instances' listeners on the relay");
  assert.equal(await listenersOf("plant-1"), 2 * perInstance, "two instances listening");

  const victim = fleet.sites.get("plant-1")?.modules[0];
  assert.ok(victim);
  const killedAt = Date.now();
  victim.process.child.kill("SIGKILL");
  assert.equal(await victim.process.exited, "SIGKILL");
  // "After the kill" = once the relay has seen the dead instance's sockets close (the kernel
  // closes them at once on SIGKILL); from then on no connection may fail.
  await waitFor(
    async () => (await listenersOf("plant-1")) === perInstance,
    "the relay to drop the dead instance",
  );

  const droppedAt = Date.now();
  const n = 40;
  const failures: string[] = [];
  for (let i = 0; i < n; i++) {
    const data = keystream()(1 + i * 997);
    try {
      const got = await echoExact(
        fleet.sites.get("plant-1")?.publicPorts.echo ?? 0,
        data,
        "127.0.0.1",
        20_000,
      );
      if (sha256(got) !== sha256(data)) failures.push(`#${i}: different bytes`);
    } catch (err) {
      failures.push(`#${i}: ${String(err)}`);
    }
  }
  t.diagnostic(
    `relay dropped the dead instance after ${droppedAt - killedAt} ms; ${n} connections took ${Date.now() - droppedAt} ms`,
  );
  assert.deepEqual(failures, [], `${failures.length} of ${n} connections failed after the kill`);
  assert.ok(await siteServes(fleet.sites.get("plant-1")?.publicPorts.web ?? 0, "plant-1"));
});

test("two gateways, one killed: the other serves every route", async () => {
  assert.equal(fleet.gateways.length, 2);
  assert.deepEqual(await everyRoute("127.0.0.1"), []);
  assert.deepEqual(await everyRoute("127.0.0.2"), []);

  const victim = fleet.gateways[1];
  assert.ok(victim);
  victim.process.child.kill("SIGKILL");
  assert.equal(await victim.process.exited, "SIGKILL");
  // It is really gone: its host refuses the public port.
  await assert.rejects(
    connectTcp(fleet.sites.get("plant-1")?.publicPorts.web ?? 0, victim.host),
    /ECONNREFUSED/,
  );

  assert.deepEqual(await everyRoute("127.0.0.1"), []);
});
