/**
 * `stateFile` / `--state-file`: a restarted relay emulator comes back with its hybrid connections,
 * rules and keys, and with the same CA (from `--dir`), so listeners holding the old key and the
 * old CA file reconnect with no change. A corrupt state file is a clear start-up error.
 */
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { join } from "node:path";
import { test } from "node:test";
import { hasErrorCode } from "../../lib/errors.ts";
import { audienceFor, createSasToken } from "../../lib/hyco/sas.ts";
import { startRelayEmulator } from "../../sim/relay-emulator/index.ts";
import { spawnTs, tempDir } from "../helpers/index.ts";
import { hcUrl, openListener, refusedStatus } from "../helpers/relay-emulator-clients.ts";

test("entities, rules and keys and the CA survive a restart with the same state file and dir", async (t) => {
  const dir = tempDir(t);
  const stateFile = join(dir, "state.json");
  const first = await startRelayEmulator({ tls: true, dir, stateFile });
  first.admin.putHybridConnection("site-a");
  first.admin.putHybridConnection("site-b", { requiresClientAuthorization: false });
  const listen = first.admin.putAuthorizationRule("site-a", "listen", ["Listen"]).rule;
  const rotated = first.admin.regenerateKeys("site-a", "listen", "SecondaryKey");
  first.admin.putAuthorizationRule(undefined, "ops", ["Listen", "Send"]);
  first.admin.putHybridConnection("gone");
  first.admin.deleteHybridConnection("gone");
  const ca = readFileSync(first.caFile as string, "utf8");
  const port = first.port;
  const manageKey = first.manageKey;
  await first.close();

  const second = await startRelayEmulator({ tls: true, dir, stateFile, port });
  t.after(() => second.close());
  assert.equal(readFileSync(second.caFile as string, "utf8"), ca, "the CA in --dir is reused");
  assert.equal(second.manageKey, manageKey, "the root key is restored from the state file");
  assert.deepEqual(
    second.admin
      .listHybridConnections()
      .map((h) => [h.name, h.requiresClientAuthorization])
      .sort(),
    [
      ["site-a", true],
      ["site-b", false],
    ],
  );
  const rule = second.admin.getAuthorizationRule("site-a", "listen");
  assert.equal(rule?.primaryKey, listen.primaryKey);
  assert.equal(rule?.secondaryKey, rotated?.secondaryKey);
  assert.ok(second.admin.getAuthorizationRule(undefined, "ops"));

  // A client that kept the old key and trusts the old CA (emu.ca of the restarted one = same PEM).
  const l = await openListener(t, second, "site-a", { keyName: "listen", key: rotated?.secondaryKey ?? "" });
  assert.equal(l.ws.readyState, l.ws.OPEN, "a listener with the saved key and the old CA is online");
  l.ws.close();
  // The deleted entity stays deleted.
  const refused = await refusedStatus(t, second, hcUrl(second, "gone", "sb-hc-action=listen"));
  assert.equal(refused.status, 404);
});

test("an explicit manage key wins over the saved root key; a corrupt state file fails the start", async (t) => {
  const dir = tempDir(t);
  const stateFile = join(dir, "state.json");
  const first = await startRelayEmulator({ stateFile });
  first.admin.putHybridConnection("site-a");
  await first.close();
  const second = await startRelayEmulator({ stateFile, manageKey: "explicit-key" });
  assert.equal(second.manageKey, "explicit-key");
  assert.ok(second.admin.getHybridConnection("site-a"));
  await second.close();

  writeFileSync(stateFile, "{ not json");
  await assert.rejects(startRelayEmulator({ stateFile }), (err) =>
    hasErrorCode(err, "RF_ERR_RELAYEMU_STATE"),
  );
  writeFileSync(stateFile, JSON.stringify({ version: 1, rules: [], hybridConnections: [{ name: 5 }] }));
  await assert.rejects(startRelayEmulator({ stateFile }), (err) =>
    hasErrorCode(err, "RF_ERR_RELAYEMU_STATE"),
  );
});

test("the command saves admin API changes to --state-file and loads them after a restart", async (t) => {
  const dir = tempDir(t);
  const stateFile = join(dir, "state.json");
  const args = ["--tls", "--dir", dir, "--state-file", stateFile];
  let proc = spawnTs(t, "sim/relay-emulator/main.ts", args);
  const line = JSON.parse((await proc.waitForLine(/^\{.*"listening".*\}$/m))[0]) as {
    url: string;
    caFile: string;
    manageKey: string;
  };
  const emu = { endpoint: line.url.replace("wss:", "sb:"), port: Number(new URL(line.url).port) };
  const auth = createSasToken(audienceFor(emu.endpoint), "RootManageSharedAccessKey", line.manageKey);
  const ca = readFileSync(line.caFile);
  const call = (method: string, path: string, body?: unknown) =>
    new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(
        `https://127.0.0.1:${emu.port}/$admin${path}`,
        { method, ca, headers: { authorization: auth, "content-type": "application/json" } },
        (res) => {
          let text = "";
          res.setEncoding("utf8").on("data", (c: string) => {
            text += c;
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
        },
      );
      req.on("error", reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  assert.equal((await call("PUT", "/hybridConnections/site-x", {})).status, 201);
  const rule = JSON.parse(
    (await call("PUT", "/hybridConnections/site-x/authorizationRules/send", { rights: ["Send"] })).text,
  ) as {
    primaryKey: string;
  };
  const saved = JSON.parse(readFileSync(stateFile, "utf8")) as { hybridConnections: Array<{ name: string }> };
  assert.deepEqual(
    saved.hybridConnections.map((h) => h.name),
    ["site-x"],
  );
  assert.equal(await proc.stop("SIGTERM"), 0);

  proc = spawnTs(t, "sim/relay-emulator/main.ts", [
    ...args,
    "--port",
    String(emu.port),
    "--manage-key",
    line.manageKey,
  ]);
  await proc.waitForLine(/"listening"/);
  const got = await call("GET", "/hybridConnections/site-x/authorizationRules/send");
  assert.equal(got.status, 200, got.text);
  assert.equal((JSON.parse(got.text) as { primaryKey: string }).primaryKey, rule.primaryKey);
  assert.equal(await proc.stop("SIGTERM"), 0);
});
