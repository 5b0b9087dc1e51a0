/**
 * Section 6 of issue 13: the allowlist is the device owner's. A deployment built from
 * deployment.template.json that tries to widen it (RELAY_ALLOWED_TARGETS in the module's env,
 * as anyone who can write $edgeAgent could add) changes nothing: the module, given that env the
 * way edgeAgent passes it, still refuses a target outside the device's allowlist file and
 * serves the one inside it.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { generateDeployment, loadEnv, readModules } from "../../scripts/genconfig.ts";
import { REPO_ROOT } from "../helpers/index.ts";
import {
  allowlistFile,
  openPort,
  patchDesired,
  startModuleProcess,
  startSite,
  waitReported,
} from "./module-harness.ts";

type Json = Record<string, unknown>;

/** The relayListener env of the generated manifest, with a widening entry added by "the cloud". */
function widenedDeploymentEnv(): Record<string, string> {
  const env = loadEnv(REPO_ROOT, {});
  const manifest = generateDeployment(readFileSync(join(REPO_ROOT, "deployment.template.json"), "utf8"), {
    platform: "amd64",
    env,
    modules: readModules(REPO_ROOT, "modules", env),
  });
  const agent = ((manifest.modulesContent as Json).$edgeAgent as Json)["properties.desired"] as Json;
  const modEnv = ((agent.modules as Json).relayListener as Json).env as Record<string, { value: string }>;
  modEnv.RELAY_ALLOWED_TARGETS = { value: "0.0.0.0/0:*;127.0.0.0/8:*" };
  return Object.fromEntries(Object.entries(modEnv).map(([k, v]) => [k, v.value]));
}

test("a deployment that widens the allowlist is ignored: only the device file counts", {
  timeout: 60_000,
}, async (t) => {
  const site = await startSite(t, "site-allow");
  const servers = await Promise.all(
    [0, 1].map(
      () =>
        new Promise<{ port: number; close: () => void }>((resolve) => {
          const s = createServer((c) => {
            c.on("error", () => {});
            c.write("hello");
          });
          s.listen(0, "127.0.0.1", () =>
            resolve({
              port: (s.address() as { port: number }).port,
              close: () => s.close(),
            }),
          );
        }),
    ),
  );
  t.after(() => {
    for (const s of servers) s.close();
  });
  const inside = servers[0]!;
  const outside = servers[1]!;
  const deploymentEnv = widenedDeploymentEnv();
  assert.equal(deploymentEnv.RELAY_ALLOWED_TARGETS, "0.0.0.0/0:*;127.0.0.0/8:*");
  const mod = await startModuleProcess(t, site, {
    ...deploymentEnv,
    METRICS_PORT: "0",
    LOG_LEVEL: "debug",
    RELAY_ALLOWLIST_FILE: allowlistFile(t, `# the device owner's list\n127.0.0.1/32:${inside.port}\n`),
  });
  const warned = await mod.waitForLine(/RELAY_ALLOWED_TARGETS is set but ignored/, 5_000);
  assert.ok(warned);
  const v = await patchDesired(site, {
    relay: site.relaySection(),
    mappings: {
      inside: { target: `127.0.0.1:${inside.port}` },
      outside: { target: `127.0.0.1:${outside.port}` },
    },
  });
  const r = await waitReported(
    site,
    (x) => x.appliedDesiredVersion === v && x.relay?.status === "online",
    "desired applied",
  );
  assert.equal(r.mappings?.outside?.state, "refused");
  assert.match(r.mappings?.outside?.lastError ?? "", /outside the local allowlist/);
  assert.notEqual(r.mappings?.inside?.state, "refused");
  // A refused mapping does not listen: the sender finds no such logical port.
  await assert.rejects(openPort(site, "outside"), /refused|no such logical port/);
  const { ws, early } = await openPort(site, "inside");
  await new Promise<void>((resolve) => {
    if (Buffer.concat(early).includes("hello")) resolve();
    ws.on("message", (d: Buffer) => d.includes("hello") && resolve());
  });
  ws.close();
});
