/**
 * Onboarding as a queue (issue 18, ADR 0024), against an IoT Hub emulator enforcing S1 (100
 * identity-registry operations a minute): the devices of a job's sites are created with bulk
 * registry calls, throttled operations wait for the hub's Retry-After and are retried, a site the
 * rollout refuses fails alone and leaves nothing, and a bad row refuses the whole job before
 * anything is written. Through the HTTP API, `relay-fleet sites add --from-file` shows progress
 * and a summary.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { setRollout } from "../../cloud/functions/src/config.ts";
import { startRolloutHttpServer } from "../../cloud/functions/src/http-server.ts";
import { createRegistryHub, MODULE_ID, withHubPacing } from "../../cloud/functions/src/rollout/index.ts";
import { createIotHubServiceClients } from "../../lib/azure/iothub-service.ts";
import { REPO_ROOT, tempDir } from "../helpers/index.ts";
import { startRolloutEnv } from "../helpers/rollout-env.ts";

const run = promisify(execFile);

test("an onboarding job on a throttled S1 hub: bulk device creation, retries, a refused site leaves nothing, progress through the CLI", async (t) => {
  const env = await startRolloutEnv(t, { hub: { sku: "S1", units: 1 } });
  const { registry } = createIotHubServiceClients(env.hubEmulator.serviceConnectionString, {
    restPort: env.hubEmulator.httpsPort,
    ca: env.hubEmulator.caCert,
  });
  const waits: number[] = [];
  const rollout = env.makeRollout({
    hub: withHubPacing(createRegistryHub(registry), {
      onThrottled: (_op, delayMs) => {
        waits.push(delayMs);
      },
    }),
    onboarding: { retryDelayMs: 200 },
  });
  const quotas = env.hubEmulator.quotas.counts;
  const devices = () => env.hubEmulator.hub.listDevices().map((d) => String(d.deviceId));

  await t.test("a bad row refuses the job whole: each bad row named, nothing queued or written", () => {
    const before = quotas.registry.allowed;
    assert.throws(
      () =>
        rollout.onboarding.submit({
          sites: [
            { siteId: "fine-1" },
            { siteId: "Bad_Id" },
            { siteId: "fine-2", profile: "nope" },
            { siteId: "fine-1" },
          ],
        }),
      (err: Error & { code?: string; issues?: Array<{ path: string }> }) => {
        assert.equal(err.code, "RF_ERR_ROLLOUT_INVALID");
        assert.deepEqual(
          err.issues?.map((i) => i.path),
          ["sites[1].siteId", "sites[2].profile", "sites[3].siteId"],
        );
        return true;
      },
    );
    assert.equal(quotas.registry.allowed, before, "no hub call was made");
    assert.deepEqual(devices(), []);
  });

  await t.test(
    "a job's sites are onboarded whole within the throttle; a refused site fails alone",
    async () => {
      // Spend the minute's registry budget, so the job needs the refill (about 1.7 a second).
      await rollout.createSite({
        siteId: "taken",
        mappings: { web: { target: "127.0.0.1:80", public: { kind: "tcp", port: 43500 } } },
      });
      const left = 100 - quotas.registry.allowed;
      // All of it: the job's first bulk call (nine devices at once) then has to wait for the refill.
      await Promise.all(Array.from({ length: Math.max(0, left) }, () => registry.get("taken")));
      const before = { ...quotas.registry };
      const sites = Array.from({ length: 8 }, (_, i) => ({ siteId: `q-${i}` }));
      const job = rollout.onboarding.submit({
        sites: [
          ...sites,
          // Asks for the port "taken" holds: refused when checked, after its device was bulk-created.
          {
            siteId: "clash",
            mappings: { web: { target: "127.0.0.1:80", public: { kind: "tcp", port: 43500 } } },
          },
        ],
      });
      assert.equal(job.total, 9);
      const done = await rollout.onboarding.settled(job.id);
      assert.ok(done);
      assert.equal(done.state, "done");
      assert.deepEqual(done.counts, { queued: 0, running: 0, succeeded: 8, failed: 1 });
      const clash = done.sites.find((s) => s.siteId === "clash");
      assert.equal(clash?.state, "failed");
      assert.equal(clash?.code, "RF_ERR_LEDGER_PORT_TAKEN");
      assert.ok(!devices().includes("clash"), "the refused site's bulk-created device is gone");
      assert.equal(await env.deps.ledger.getSite("clash"), undefined);
      for (const s of sites) {
        assert.ok(env.hubEmulator.hub.module(s.siteId, MODULE_ID), `${s.siteId} has its module identity`);
        assert.equal(
          (await env.deps.ledger.listRoutes({ siteId: s.siteId })).length,
          2,
          `${s.siteId} has its routes`,
        );
      }
      // Whether the hub refused some of them depends on how fast this machine spends the budget
      // against the refill; when it did, the rollout waited for it (and no site failed, above).
      const throttled = quotas.registry.throttled - before.throttled;
      if (throttled > 0) assert.ok(waits.length > 0, "the rollout waited for the hub");
      t.diagnostic(`registry operations refused with 429: ${throttled}, waits: ${waits.length}`);
      // Bulk creation: one registry operation per device in the bulk call, one per module, one to
      // delete the refused site's device; no per-device read. A single onboarding takes four.
      const used = quotas.registry.allowed - before.allowed;
      assert.ok(used <= 9 + 9 + 1, `registry operations used: ${used}`);
    },
  );

  await t.test(
    "relay-fleet sites add --from-file shows progress and a summary; a bad file submits nothing",
    async () => {
      const server = await startRolloutHttpServer(undefined);
      t.after(() => server.close());
      setRollout(rollout);
      t.after(() => setRollout(undefined));
      const dir = tempDir(t);
      const cli = async (args: string[]) => {
        try {
          const r = await run(process.execPath, [join(REPO_ROOT, "bin/relay-fleet.js"), ...args], {
            cwd: dir,
            env: {
              ...process.env,
              RELAY_FLEET_API_URL: server.url,
              RELAY_FLEET_API_KEY: server.functionKey,
              NO_COLOR: "1",
            },
          });
          return { code: 0, ...r };
        } catch (err) {
          const e = err as { code: number; stdout: string; stderr: string };
          return { code: e.code, stdout: e.stdout, stderr: e.stderr };
        }
      };
      const bad = join(dir, "bad.csv");
      writeFileSync(bad, "siteId,deviceId,profile\ncsv-1,,single\nNot_Valid,,\ncsv-2,,single,extra\n");
      const before = devices().length;
      let r = await cli(["sites", "add", "--from-file", bad]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /bad\.csv has 2 bad rows; nothing was submitted/);
      assert.match(r.stderr, /line 3: siteId: /);
      assert.match(r.stderr, /line 4: 4 fields, the header has 3/);
      assert.equal(devices().length, before, "nothing was created");

      const good = join(dir, "sites.csv");
      writeFileSync(good, "# two sites\nsiteId,deviceId,profile\ncsv-1,,single\ncsv-2,csv-2a;csv-2b,\n");
      r = await cli(["sites", "add", "--from-file", good]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /onboarding 2 sites: /);
      assert.match(r.stdout, /\(done\): 2 sites: 2 succeeded, 0 failed, 0 running, 0 queued/);
      assert.ok(devices().includes("csv-2b"));
      const site = await rollout.getSite("csv-2", { withModule: false });
      assert.deepEqual(
        site.devices.map((d) => d.deviceId),
        ["csv-2a", "csv-2b"],
      );
      const jobId = /job ([0-9a-f-]{36})/.exec(r.stdout)?.[1];
      assert.ok(jobId);
      r = await cli(["sites", "job", jobId, "--json"]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal((JSON.parse(r.stdout) as { counts: { succeeded: number } }).counts.succeeded, 2);
      // The namespace commands answer through the same API: one namespace, the sites in it.
      r = await cli(["sites", "namespaces", "--json"]);
      assert.equal(r.code, 0, r.stderr);
      const [ns] = JSON.parse(r.stdout) as Array<{ endpoint: string; sites: number; connections: number }>;
      assert.equal(ns?.endpoint, env.deps.relay.endpoint);
      assert.equal(ns?.sites, (await env.deps.ledger.listSites()).length);
      r = await cli(["sites", "move", "csv-1", "--namespace", env.deps.relay.endpoint]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /csv-1 already is in .*; nothing changed/);
    },
  );
});
