/**
 * The audit trail read back over real sockets: a module (the unmodified device SDK over MQTT)
 * sends an audit batch on output `audit`; the IoT Hub emulator keeps it and serves it on its
 * emulator-only messages route (service SAS, routed-message JSON, 400 for a bad `since`); a
 * gateway's JSON log line sits in a log file; the rollout's `GET /api/audit` (function key, zod
 * query) merges both ends newest first; the status page's site view shows them; and
 * `relay-fleet audit` (a child process) lists them, as a table and as JSON, refusing a bad
 * `--since` as a usage error.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { request } from "node:https";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import deviceSdk from "azure-iot-device";
import mqttTransport from "azure-iot-device-mqtt";
import { gatewayLogSource, hubEmulatorSource } from "../../cloud/functions/src/audit/sources.ts";
import { setAuditSources } from "../../cloud/functions/src/config.ts";
import { startRolloutHttpServer } from "../../cloud/functions/src/http-server.ts";
import { AUDIT_MESSAGE_TYPE, type AuditRecord } from "../../lib/audit/index.ts";
import { createHubSasToken } from "../../sim/iothub-emulator/auth.ts";
import type { IotHubEmulator } from "../../sim/iothub-emulator/index.ts";
import { REPO_ROOT, tempDir, waitFor } from "../helpers/index.ts";
import { startRolloutEnv } from "../helpers/rollout-env.ts";

const { ModuleClient, Message } = deviceSdk;
const { Mqtt } = mqttTransport;
const run = promisify(execFile);

const DEVICE = "audit-edge";
const MODULE = "relayListener";

function hubGet(emu: IotHubEmulator, path: string, auth: string | undefined) {
  return new Promise<{ status: number; body: unknown }>((resolve, reject) => {
    const req = request(
      {
        host: emu.host,
        port: emu.httpsPort,
        path,
        ca: emu.caCert,
        headers: auth ? { authorization: auth } : {},
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8").on("data", (c: string) => {
          text += c;
        });
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined }),
        );
      },
    );
    req.on("error", reject);
    req.end();
  });
}

async function cli(cwd: string, args: string[], env: NodeJS.ProcessEnv) {
  try {
    const { stdout, stderr } = await run(process.execPath, [join(REPO_ROOT, "bin/relay-fleet.js"), ...args], {
      cwd,
      env: { ...process.env, NO_COLOR: "1", RELAY_FLEET_SIM_STATE: "", ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test("audit: module batches kept by the hub emulator and gateway log lines, through the API, the site page and the CLI; 501 without a source", async (t) => {
  const env = await startRolloutEnv(t);
  const emu = env.hubEmulator;
  await env.rollout.createSite({ siteId: "plant-a" });
  await env.rollout.createSite({ siteId: "plant-b" });

  // The module's end: the real device SDK, the message built as the module builds it.
  const { registry } = await import("../../lib/azure/iothub-service.ts").then((m) =>
    m.createIotHubServiceClients(emu.serviceConnectionString, { restPort: emu.httpsPort, ca: emu.caCert }),
  );
  await registry.create({ deviceId: DEVICE, capabilities: { iotEdge: true } });
  await registry.addModule({ deviceId: DEVICE, moduleId: MODULE });
  const moduleEnv = emu.moduleEnvironment(DEVICE, MODULE);
  const saved = { ...process.env };
  Object.assign(process.env, moduleEnv);
  const client = await ModuleClient.fromEnvironment(Mqtt).finally(() => {
    for (const k of Object.keys(moduleEnv)) if (saved[k] === undefined) delete process.env[k];
  });
  t.after(() => client.close());
  await client.open();
  const moduleRecord: AuditRecord = {
    side: "module",
    time: new Date(Date.now() - 2_000).toISOString(),
    startedAt: new Date(Date.now() - 5_000).toISOString(),
    site: "plant-a",
    device: "spoofed-in-body",
    mapping: "web",
    client: "203.0.113.7:50123",
    target: "10.0.0.5:443",
    bytesIn: 1200,
    bytesOut: 34000,
    durationMs: 3000,
    end: "completed",
  };
  const send = async (body: unknown, properties: Record<string, string>) => {
    const message = new Message(JSON.stringify(body));
    message.contentType = "application/json";
    message.contentEncoding = "utf-8";
    for (const [k, v] of Object.entries(properties)) message.properties.add(k, v);
    await client.sendOutputEvent("audit", message);
  };
  await send(
    { type: "relay-fleet.audit", v: 1, records: [moduleRecord], dropped: 2 },
    {
      relayFleetType: AUDIT_MESSAGE_TYPE,
    },
  );
  await send({ temperature: 21 }, { kind: "telemetry" });
  await waitFor(async () => emu.telemetry.list({ deviceId: DEVICE }).length === 2, "both messages kept");

  // The emulator-only route: service SAS required, routed-message JSON, filters, clear 400s.
  const owner = emu.hub.store.policies.iothubowner;
  assert.ok(owner);
  const sas = createHubSasToken(emu.hostName, owner.primaryKey, { keyName: "iothubowner" });
  assert.equal((await hubGet(emu, "/emulator/messages/events", undefined)).status, 401);
  const kept = await hubGet(emu, "/emulator/messages/events?property=relayFleetType:audit", sas);
  assert.equal(kept.status, 200);
  const routed = kept.body as Array<{
    SystemProperties: Record<string, string>;
    Body: { records: unknown[] };
  }>;
  assert.equal(routed.length, 1, "only the audit message");
  assert.equal(routed[0]?.SystemProperties.connectionDeviceId, DEVICE);
  assert.equal(routed[0]?.SystemProperties.connectionModuleId, MODULE);
  assert.equal(routed[0]?.Body.records.length, 1);
  const future = new Date(Date.now() + 60_000).toISOString();
  assert.deepEqual((await hubGet(emu, `/emulator/messages/events?since=${future}`, sas)).body, []);
  const badSince = await hubGet(emu, "/emulator/messages/events?since=yesterday", sas);
  assert.equal(badSince.status, 400);
  assert.match(JSON.stringify(badSince.body), /since must be an ISO 8601 time/);
  assert.equal((await hubGet(emu, "/emulator/messages/events?top=0", sas)).status, 400);

  // The gateway's end: its JSON log line in a log file (as the simulation writes it).
  const dir = tempDir(t, "relay-fleet-audit-");
  const gatewayLog = join(dir, "gateway-1.log");
  const gatewayRecord: AuditRecord = {
    side: "gateway",
    time: new Date(Date.now() - 1_000).toISOString(),
    startedAt: new Date(Date.now() - 5_000).toISOString(),
    site: "plant-a",
    mapping: "web",
    client: "203.0.113.7:50123",
    publicPort: 21000,
    bytesIn: 1200,
    bytesOut: 34000,
    durationMs: 4000,
    end: "completed",
  };
  const refused: AuditRecord = {
    ...gatewayRecord,
    site: "plant-b",
    time: new Date(Date.now() - 10_000).toISOString(),
    bytesIn: 0,
    bytesOut: 0,
    end: "refused",
    reason: "allowlist",
  };
  writeFileSync(
    gatewayLog,
    `${[
      JSON.stringify({ level: 30, event: "started" }),
      JSON.stringify({ level: 30, event: "audit", audit: refused, msg: "tunnel audit" }),
      JSON.stringify({ level: 30, event: "audit", audit: gatewayRecord, msg: "tunnel audit" }),
    ].join("\n")}\n`,
  );

  setAuditSources([
    hubEmulatorSource({
      connectionString: emu.serviceConnectionString,
      restPort: emu.httpsPort,
      ca: emu.caCert,
    }),
    gatewayLogSource([gatewayLog, join(dir, "gateway-2.log")]),
  ]);
  t.after(() => setAuditSources(undefined));
  const server = await startRolloutHttpServer(env.rollout);
  t.after(() => server.close());
  const api = (path: string, key: string | null = server.functionKey) =>
    fetch(`${server.url}${path}`, key === null ? {} : { headers: { "x-functions-key": key } });

  assert.equal((await api("/api/audit", null)).status, 401);
  assert.equal((await api("/api/audit", "wrong")).status, 401);
  const all = (await (await api("/api/audit")).json()) as {
    count: number;
    records: AuditRecord[];
    sources: Array<{ ok: boolean; dropped?: number }>;
  };
  assert.deepEqual(
    all.records.map((r) => `${r.site}/${r.side}/${r.end}`),
    ["plant-a/gateway/completed", "plant-a/module/completed", "plant-b/gateway/refused"],
    "both ends, newest first",
  );
  assert.equal(all.records[1]?.device, DEVICE, "the device is the hub's connection identity");
  assert.deepEqual(
    all.sources.map((s) => [s.ok, s.dropped]),
    [
      [true, 2],
      [true, 0],
    ],
  );
  const one = (await (await api("/api/audit?site=plant-b")).json()) as { records: AuditRecord[] };
  assert.deepEqual(
    one.records.map((r) => r.reason),
    ["allowlist"],
  );
  const bad = await api("/api/audit?since=yesterday");
  assert.equal(bad.status, 400);
  const badBody = (await bad.json()) as { error: { code: string; message: string } };
  assert.equal(badBody.error.code, "RF_ERR_AUDIT_INVALID_QUERY");
  assert.match(badBody.error.message, /since must be/);

  // The status page's site view shows the site's records.
  const page = (await (await api("/api/fleet/data/sites/plant-a")).json()) as {
    audit: { available: boolean; records: AuditRecord[] };
  };
  assert.equal(page.audit.available, true);
  assert.deepEqual(
    page.audit.records.map((r) => r.side),
    ["gateway", "module"],
  );

  // The CLI, as an operator runs it.
  const cwd = tempDir(t, "relay-fleet-audit-cli-");
  const apiEnv = { RELAY_FLEET_API_URL: server.url, RELAY_FLEET_API_KEY: server.functionKey };
  // Independent runs in parallel: each CLI start costs seconds on a loaded machine.
  const [text, json, usage, usageJson, badSite] = await Promise.all([
    cli(cwd, ["audit", "--site", "plant-a"], apiEnv),
    cli(cwd, ["audit", "--since", "1h", "--limit", "1", "--json"], apiEnv),
    cli(cwd, ["audit", "--since", "yesterday"], apiEnv),
    cli(cwd, ["audit", "--since", "yesterday", "--json"], apiEnv),
    cli(cwd, ["audit", "--site", "Bad_Site", "--json"], apiEnv),
  ]);
  assert.equal(text.code, 0, text.stderr);
  const lines = text.stdout.trim().split("\n");
  assert.match(lines[0] ?? "", /^TIME\s+SIDE\s+SITE\s+DEVICE\s+MAPPING\s+CLIENT/);
  assert.equal(lines.length, 3);
  assert.match(
    lines[1] ?? "",
    /gateway\s+plant-a\s+-\s+web\s+203\.0\.113\.7:50123\s+port 21000\s+1200\s+34000\s+4\.0 s\s+completed/,
  );
  assert.match(lines[2] ?? "", new RegExp(`module\\s+plant-a\\s+${DEVICE}\\s+web\\s+.*10\\.0\\.0\\.5:443`));
  assert.match(text.stderr, /dropped 2 record/, "records a module dropped are not silent");
  assert.equal(json.code, 0, json.stderr);
  const parsed = JSON.parse(json.stdout) as AuditRecord[];
  assert.equal(parsed.length, 1);
  assert.equal(parsed[0]?.side, "gateway");
  assert.equal(usage.code, 2, "a bad --since is a usage error");
  assert.match(usage.stderr, /--since.*ISO 8601/);
  assert.equal(usageJson.code, 2);
  assert.equal((JSON.parse(usageJson.stderr) as { error: { code: string } }).error.code, "RF_ERR_CLI_USAGE");
  assert.equal(badSite.code, 1);
  assert.equal(
    (JSON.parse(badSite.stderr) as { error: { code: string } }).error.code,
    "RF_ERR_AUDIT_INVALID_QUERY",
  );

  // No audit source (a deployed app): a 501 that says where the records are; the page says so too.
  setAuditSources([]);
  const none = await api("/api/audit");
  assert.equal(none.status, 501);
  const noneBody = (await none.json()) as { error: { code: string; message: string } };
  assert.equal(noneBody.error.code, "RF_ERR_AUDIT_NOT_CONFIGURED");
  assert.match(noneBody.error.message, /device-audit storage container/);
  const pageWithout = (await (await api("/api/fleet/data/sites/plant-a")).json()) as {
    audit: { available: boolean };
  };
  assert.equal(pageWithout.audit.available, false);
});
