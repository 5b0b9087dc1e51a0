/**
 * Back within seconds after a relay outage (issue 11, item 13). The relay emulator runs as its
 * own process; it is killed (SIGKILL) for 30 s while clients keep knocking at three sites
 * through a gateway process, then restarted on the same port with its saved state. Measured per
 * site: when the site's listener is back and when the first client is served again, from the
 * moment the restarted relay listens; and each listener's connect attempts while it was down.
 *
 * The gateway must add next to nothing to the listener's own return (its circuit breaker used to
 * refuse clients 10-14 s longer). The figures are printed as test diagnostics.
 */
import assert from "node:assert/strict";
import { connect } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { createLedger } from "../../lib/ledger/index.ts";
import { startAzurite } from "../../sim/azurite.ts";
import { startRelayEmulator } from "../../sim/relay-emulator/index.ts";
import { type ManagedProcess, sleep, spawnTs, tempDir, waitFor } from "../helpers/index.ts";
import { echoServer, freePort, startGateway } from "./gateway-harness.ts";
import { type SiteListener, startSiteListener } from "./gateway-site.ts";

const OUTAGE_MS = 30_000;
const SITES = ["a", "b", "c"];
/** The listener's own bound: at most 10 connect attempts per minute while the relay is down. */
const MAX_ATTEMPTS_PER_MINUTE = 10;
/** What the gateway may add to a listener's return: its breaker's 1 s, a knock's period, setup. */
const GATEWAY_LAG_MS = 2_500;

/** One client round trip: true when "x" comes back through the gateway. */
function served(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    const done = (ok: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 2_000);
    s.once("connect", () => s.write("x"));
    s.once("data", (d: Buffer) => done(d.toString() === "x"));
    s.once("error", () => done(false));
    s.once("close", () => done(false));
  });
}

test("after a 30 s relay outage every site serves again as soon as its listener is back", {
  timeout: 150_000,
}, async (t) => {
  const dir = tempDir(t);
  const stateFile = join(dir, "relay-state.json");
  // Create the namespace once in process (saved to the state file), then run it as a process.
  const seed = await startRelayEmulator({ stateFile });
  const relayPort = seed.port;
  const manageKey = seed.manageKey;
  const keys = SITES.map((id) => {
    seed.admin.putHybridConnection(`site-${id}`);
    return {
      id,
      send: seed.admin.putAuthorizationRule(`site-${id}`, "send", ["Send"]).rule.primaryKey,
      listen: seed.admin.putAuthorizationRule(`site-${id}`, "listen", ["Listen"]).rule.primaryKey,
    };
  });
  const url = seed.url;
  await seed.close();
  const startRelay = async (): Promise<{ proc: ManagedProcess; at: number }> => {
    const proc = spawnTs(t, "sim/relay-emulator/main.ts", [
      "--port",
      String(relayPort),
      "--state-file",
      stateFile,
      "--manage-key",
      manageKey,
    ]);
    await proc.waitForLine(/"event":"listening"/, 90_000);
    return { proc, at: Date.now() };
  };
  let relay = await startRelay();

  const azurite = await startAzurite();
  t.after(() => azurite.close());
  const ledger = createLedger(azurite.connectionString, "portledger", {
    ranges: [{ from: 1024, to: 65535 }],
  });
  await ledger.ensureTable();
  const echo = await echoServer(t);
  const ports: Record<string, number> = {};
  const listeners: Record<string, SiteListener> = {};
  for (const k of keys) {
    await ledger.putSite({
      siteId: k.id,
      hybridConnection: `site-${k.id}`,
      relayEndpoint: url,
      sendKeyName: "send",
      sendKey: k.send,
      deviceId: k.id,
      createdAt: new Date().toISOString(),
    });
    ports[k.id] = await freePort();
    await ledger.allocate({
      siteId: k.id,
      portName: "echo",
      endpoint: { kind: "tcp", port: ports[k.id] as number },
    });
    listeners[k.id] = await startSiteListener(t, {
      endpoint: url,
      hybridConnection: `site-${k.id}`,
      keyName: "listen",
      key: k.listen,
      targets: { echo: echo.port },
    });
  }
  const gw = await startGateway(t, { ledger, connectionString: azurite.connectionString } as Parameters<
    typeof startGateway
  >[1]);
  for (const id of SITES) assert.ok(await served(ports[id] as number), `site ${id} serves before the outage`);

  // Clients keep knocking at every site, outage or not (that is what opens the breakers).
  const successes: Record<string, number[]> = Object.fromEntries(SITES.map((id) => [id, []]));
  let knocking = true;
  const knockers = SITES.map(async (id) => {
    while (knocking) {
      if (await served(ports[id] as number)) successes[id]?.push(Date.now());
      await sleep(200);
    }
  });
  t.after(async () => {
    knocking = false;
    await Promise.all(knockers);
  });

  relay.proc.child.kill("SIGKILL");
  await relay.proc.exited;
  const down = Date.now();
  await sleep(OUTAGE_MS);
  relay = await startRelay();
  const back = relay.at;

  await waitFor(
    () => SITES.every((id) => successes[id]?.some((at) => at > back)),
    "every site served again after the relay's return",
    { timeoutMs: 45_000, intervalMs: 100 },
  );
  knocking = false;
  await Promise.all(knockers);

  const lines: string[] = [];
  for (const id of SITES) {
    const l = listeners[id] as SiteListener;
    const servedAt = successes[id]?.find((at) => at > back) as number;
    const onlineAt = l.onlineTimes().find((at) => at > back) as number;
    assert.ok(onlineAt, `site ${id}'s listener came back`);
    const attempts = l.attemptTimes().filter((at) => at >= down && at < back).length;
    const perMinute = attempts / Math.ceil((back - down) / 60_000);
    lines.push(
      `site ${id}: listener back ${((onlineAt - back) / 1000).toFixed(2)} s and served ${((servedAt - back) / 1000).toFixed(2)} s after the relay returned; ${attempts} attempts in ${((back - down) / 1000).toFixed(1)} s down (${perMinute} per started minute)`,
    );
    assert.ok(
      servedAt - onlineAt <= GATEWAY_LAG_MS,
      `site ${id} served ${servedAt - onlineAt} ms after its listener was back: the gateway held it up`,
    );
    assert.ok(attempts >= 2, `site ${id}'s listener kept trying while the relay was down`);
    assert.ok(perMinute <= MAX_ATTEMPTS_PER_MINUTE, `site ${id}: ${attempts} attempts while down`);
  }
  for (const line of lines) t.diagnostic(line);
  if (process.env.RELAY_OUTAGE_REPORT) console.log(lines.join("\n"));
  assert.equal(await gw.metric("gateway_open_circuits", {}), 0, "no circuit left open once the sites serve");
});
