/**
 * The module as a real process against both emulators: a mapping added through
 * Registry.updateModuleTwin starts accepting, carries bytes exactly, a bad patch is reported
 * while the old config keeps working, removal stops it, the allowlist refuses a target, and no
 * secret reaches the logs; the reconnect phase the twin assigns is taken (a bad one keeps the last
 * good, none goes back to the module's own, ADR 0031); SIGTERM reports offline and exits 0.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { keyFingerprint } from "../../lib/hyco/sas.ts";
import { waitFor } from "../helpers/index.ts";
import {
  openPort,
  patchDesired,
  roundTrip,
  startEcho,
  startModuleProcess,
  startSite,
  waitReported,
} from "./module-harness.ts";

test("twin-driven mappings: add, byte-exact, bad patch, allowlist, remove, SIGTERM", {
  timeout: 90_000,
}, async (t) => {
  const site = await startSite(t);
  const echo = await startEcho(t);
  const mod = await startModuleProcess(t, site);

  // 1. relay + a mapping through the real Registry, and the reconnect phase the rollout assigns.
  const v1 = await patchDesired(site, {
    schemaVersion: "1.1",
    relay: site.relaySection(),
    mappings: { echo: { target: `127.0.0.1:${echo.port}` } },
    hubReconnect: { phase: 0.375 },
  });
  const r1 = await waitReported(
    site,
    (r) =>
      r.appliedDesiredVersion === v1 && r.relay?.status === "online" && r.mappings?.echo?.state === "active",
    "mapping echo active and relay online",
  );
  assert.equal(r1.relay?.keyFingerprint, keyFingerprint(site.listenKey));
  assert.equal(r1.relay?.listeners?.length, 2);
  // The module's hub reconnect slots took the twin's phase (ADR 0031).
  assert.equal(r1.hubReconnect?.phase, 0.375);
  assert.equal(r1.hubReconnect?.origin, "assigned");

  // 2. byte-exact transfer (1 MiB random).
  const payload = randomBytes(1024 * 1024);
  const { ws, early } = await openPort(site, "echo");
  const back = await roundTrip(ws, early, payload);
  assert.ok(back.equals(payload), "echoed bytes differ");
  ws.close();
  await waitReported(
    site,
    (r) => (r.mappings?.echo?.bytesIn ?? 0) >= payload.length && r.mappings?.echo?.activeConnections === 0,
    "counters",
  );

  // 3. a bad patch: the bad mapping keeps its last good value, a good new mapping is applied.
  const v2 = await patchDesired(site, {
    mappings: { echo: { target: "no-port-here" }, echo2: { target: `127.0.0.1:${echo.port}` } },
    hubReconnect: { phase: 1.5 },
  });
  const r2 = await waitReported(site, (r) => r.appliedDesiredVersion === v2, "bad patch applied");
  assert.deepEqual(
    r2.errors?.map((e) => e.path),
    ["mappings.echo.target", "hubReconnect.phase"],
  );
  assert.equal(r2.hubReconnect?.phase, 0.375, "a bad phase keeps the last good one");
  assert.equal(r2.mappings?.echo?.state, "active");
  assert.equal(r2.mappings?.echo2?.state, "active");
  const again = await openPort(site, "echo");
  assert.ok(
    (await roundTrip(again.ws, again.early, Buffer.from("still works"))).equals(Buffer.from("still works")),
  );
  again.ws.close();

  // 4. the allowlist refuses a target outside it, and the cloud cannot override it.
  const v3 = await patchDesired(site, {
    mappings: { echo: { target: `127.0.0.1:${echo.port}` }, lan: { target: "10.9.9.9:22" } },
  });
  const r3 = await waitReported(site, (r) => r.appliedDesiredVersion === v3, "allowlist patch applied");
  assert.equal(r3.mappings?.lan?.state, "refused");
  assert.ok(r3.errors?.some((e) => e.path === "mappings.lan.target" && /allowlist/.test(e.message)));
  await assert.rejects(openPort(site, "lan"), /closed 1008/);

  // 5. removal stops new connections.
  const v4 = await patchDesired(site, { mappings: { echo: null }, hubReconnect: null });
  const r4 = await waitReported(
    site,
    (r) => r.appliedDesiredVersion === v4 && r.mappings?.echo === undefined,
    "echo removed",
  );
  assert.equal(r4.mappings?.echo2?.state, "active");
  assert.equal(r4.hubReconnect?.origin, "random", "no phase in the twin: the module's own");
  assert.notEqual(r4.hubReconnect?.phase, 0.375);
  await assert.rejects(openPort(site, "echo"), /closed 1008/);

  // 6. SIGTERM: offline reported, exit 0; no secret in any log line.
  const code = await mod.stop("SIGTERM", 15_000);
  assert.equal(code, 0);
  await waitReported(site, (r) => r.status === "offline", "offline reported");
  const logs = mod.stdout() + mod.stderr();
  for (const secret of [site.listenKey, site.sendKey])
    assert.ok(!logs.includes(secret), "a key leaked into the logs");
  assert.ok(!/SharedAccessKey=|sig=[A-Za-z0-9%]{10}/.test(logs), "a token or connection string leaked");
  assert.ok(logs.includes('"msg":"configuration applied"'));
  await waitFor(() => true, "noop");
});
