/**
 * The status page over the rollout service's HTTP server (the simulation's Functions host): the
 * same function key as the API (header or `?code=`), HTML with a strict CSP, JSON data routes,
 * a clear 404 for an unknown site.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { startRolloutHttpServer } from "../../cloud/functions/src/http-server.ts";
import { startRolloutEnv } from "../helpers/rollout-env.ts";

test("status page: function key required, HTML with CSP, paged JSON data, 404 for an unknown site", async (t) => {
  const env = await startRolloutEnv(t);
  const server = await startRolloutHttpServer(env.rollout);
  t.after(() => server.close());
  await env.rollout.createSite({ siteId: "page-1" });
  await env.rollout.createSite({ siteId: "page-2" });

  assert.equal((await fetch(`${server.url}/api/fleet`)).status, 401);
  assert.equal((await fetch(`${server.url}/api/fleet/data?code=wrong`)).status, 401);

  const page = await fetch(`${server.url}/api/fleet?code=${encodeURIComponent(server.functionKey)}`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
  const csp = page.headers.get("content-security-policy") ?? "";
  assert.match(csp, /default-src 'none'/);
  const nonce = /script-src 'nonce-([^']+)'/.exec(csp)?.[1];
  assert.ok(nonce);
  assert.ok((await page.text()).includes(`<script nonce="${nonce}">`));
  assert.equal(page.headers.get("referrer-policy"), "no-referrer");

  const headers = { "x-functions-key": server.functionKey };
  const data = await fetch(`${server.url}/api/fleet/data?q=page-2&pageSize=10`, { headers });
  assert.equal(data.status, 200);
  const body = (await data.json()) as { total: number; sites: Array<{ siteId: string; health: string }> };
  assert.equal(body.total, 1);
  assert.equal(body.sites[0]?.siteId, "page-2");
  assert.equal(body.sites[0]?.health, "offline", "no module has connected");

  const one = await fetch(`${server.url}/api/fleet/data/sites/page-1`, { headers });
  assert.equal(one.status, 200);
  const site = (await one.json()) as { site: { siteId: string }; audit: { available: boolean } };
  assert.equal(site.site.siteId, "page-1");
  const ghost = await fetch(`${server.url}/api/fleet/data/sites/ghost`, { headers });
  assert.equal(ghost.status, 404);
  assert.equal(
    ((await ghost.json()) as { error: { code: string } }).error.code,
    "RF_ERR_ROLLOUT_SITE_NOT_FOUND",
  );
});
