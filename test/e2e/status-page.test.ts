/**
 * The fleet status page in a real browser (Debian's Chromium under playwright-core) against the
 * real simulation (sim/fleet.ts: emulators, rollout service, gateway, modules as processes):
 * the page lists the sites, a site added with the CLI appears without a reload, a killed module
 * turns its device offline, search and paging work from the keyboard, and the page reflows at a
 * 200 %-zoom-sized viewport. Skips where /usr/bin/chromium is missing (.ci/run installs it).
 * STATUS_PAGE_SCREENSHOT=<file.png> saves a screenshot (how docs/status-page.png was made).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { get as httpGet } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import type { Fleet } from "../../sim/fleet.ts";
import { fileScope, startE2eFleet } from "../helpers/e2e.ts";
import { REPO_ROOT, tempDir, waitFor } from "../helpers/index.ts";

const CHROMIUM = "/usr/bin/chromium";
const skip = existsSync(CHROMIUM)
  ? false
  : `${CHROMIUM} not installed (Debian package chromium; .ci/run installs it)`;
const run = promisify(execFile);
const scope = fileScope(after);

/** The flags the project runs Chromium with: headless, no sandbox (root in CI), nothing phoning home. */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export async function launchChromium(userDataDir: string): Promise<BrowserContext> {
  return chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1400, height: 900 },
  });
}

function httpGetText(port: number, host: string): Promise<string> {
  return new Promise((resolve, reject) => {
    httpGet({ port, host, path: "/", agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (c: string) => {
        body += c;
      });
      res.on("end", () => resolve(body));
    }).on("error", reject);
  });
}

describe("fleet status page in Chromium against the simulation", { skip, timeout: 170_000 }, () => {
  let fleet: Fleet;
  let context: BrowserContext | undefined;
  let page: Page;
  let cwd: string;
  const row = (siteId: string) => page.locator(`tr[data-site="${siteId}"]`);

  before(async () => {
    fleet = await startE2eFleet(scope, { sites: 2 });
    cwd = tempDir(scope, "relay-fleet-status-page-");
    mkdirSync(join(cwd, ".sim-state"));
    writeFileSync(
      join(cwd, ".sim-state", "sim.json"),
      JSON.stringify({
        version: 1,
        rollout: { url: fleet.rollout.url, functionKey: fleet.rollout.functionKey },
      }),
    );
    // Chromium writes its profile until it has exited, so the profile dir is removed only after
    // close() resolves (tempDir's own hook would run first and race it).
    const profileDir = mkdtempSync(join(tmpdir(), "relay-fleet-chromium-"));
    scope.after(async () => {
      await context?.close();
      rmSync(profileDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
    });
    context = await launchChromium(profileDir);
    page = context.pages()[0] ?? (await context.newPage());
    // Traffic through the gateway, so live bytes show.
    const plant1 = fleet.sites.get("plant-1");
    const host = fleet.gateways[0]?.host ?? "127.0.0.1";
    await waitFor(
      async () => (await httpGetText(plant1?.publicPorts.web ?? 0, host)).includes("Hello"),
      "plant-1's page through the gateway",
      { timeoutMs: 30_000, intervalMs: 300 },
    );
  });

  test("lists every site with devices, mappings and their public ports", async () => {
    await page.goto(fleet.statusPageUrl);
    await row("plant-1").waitFor({ timeout: 30_000 });
    await row("plant-2").waitFor();
    const port = fleet.sites.get("plant-1")?.publicPorts.web;
    await waitFor(async () => (await row("plant-1").innerText()).includes("online"), "plant-1 online", {
      timeoutMs: 30_000,
    });
    const text = await row("plant-1").innerText();
    assert.match(text, /OK|Degraded/);
    assert.match(text, new RegExp(`web → port ${port}`));
    assert.match(text, /echo → port \d+/);
    assert.match(text, /\d+ of \d+ online/, "listeners per device");
    assert.match(await page.locator("#summary").innerText(), /Sites\s+2/);
    // Bytes of the page fetched above, from the gateway's metrics.
    await waitFor(async () => !/0 B in \/ 0 B out/.test(await row("plant-1").innerText()), "plant-1 bytes", {
      timeoutMs: 10_000,
    });
    if (process.env.STATUS_PAGE_SCREENSHOT)
      await page.screenshot({ path: process.env.STATUS_PAGE_SCREENSHOT });
  });

  test("a site added with the CLI appears without a reload", async () => {
    await page.evaluate("window.notReloaded = true");
    await run(process.execPath, [join(REPO_ROOT, "bin/relay-fleet.js"), "sites", "add", "cli-site"], {
      cwd,
      env: { ...process.env, NO_COLOR: "1", RELAY_FLEET_API_URL: "", RELAY_FLEET_SIM_STATE: "" },
    });
    await row("cli-site").waitFor({ timeout: 15_000 });
    assert.equal(await page.evaluate("window.notReloaded"), true, "the same document, not a reload");
    assert.match(await page.locator("#summary").innerText(), /Sites\s+3/);
  });

  test("a killed module turns its device offline on the page", async () => {
    const module = fleet.sites.get("plant-2")?.modules[0];
    assert.ok(module);
    await waitFor(async () => (await row("plant-2").innerText()).includes("✔ online"), "plant-2 online", {
      timeoutMs: 30_000,
    });
    module.process.child.kill("SIGKILL");
    await waitFor(async () => (await row("plant-2").innerText()).includes("✖ offline"), "plant-2 offline", {
      timeoutMs: 20_000,
    });
    assert.match(await row("plant-2").innerText(), /✖ Offline/, "the site's health says it in words");
  });

  test("search by site id, keyboard only, and the site page with its mappings", async () => {
    await page.locator("#q").focus();
    await page.keyboard.type("plant-1");
    await waitFor(async () => (await page.locator("tbody tr").count()) === 1, "one row for plant-1");
    assert.match(await page.locator("caption").innerText(), /1 site matching “plant-1”/);
    // Tab from the search box reaches the site link; Enter opens the site's page.
    await page.locator('a[data-focus="site:plant-1"]').focus();
    await page.keyboard.press("Enter");
    await page.locator("#mappings").waitFor();
    assert.match(await page.locator("#view-title").innerText(), /Site plant-1/);
    const mappings = await page.locator("#mappings").innerText();
    assert.match(mappings, /web\s+port \d+\s+127\.0\.0\.1:\d+/);
    assert.match(await page.locator("#devices").innerText(), /online/);
    // The module's deployment state as the device's edge agent reports it (its image included).
    await waitFor(
      async () => /running \(image [^)]+\)/.test(await page.locator("#devices").innerText()),
      "plant-1's deployment state from its $edgeAgent",
      { timeoutMs: 30_000 },
    );
    // The tunnel fetched in before(): its record from both ends, without a reload.
    await waitFor(
      async () => {
        const audit = await page
          .locator("#audit")
          .innerText()
          .catch(() => "");
        return /gateway\s+web\s+127\.0\.0\.1:\d+.*completed/.test(audit) && /module\s+web\s/.test(audit);
      },
      "plant-1's audit records from the gateway and the module",
      { timeoutMs: 30_000 },
    );
  });

  test("relay-fleet audit lists the simulation's tunnels from both ends", async () => {
    const { stdout } = await run(
      process.execPath,
      [join(REPO_ROOT, "bin/relay-fleet.js"), "audit", "--site", "plant-1", "--since", "1h", "--json"],
      { cwd, env: { ...process.env, NO_COLOR: "1", RELAY_FLEET_API_URL: "", RELAY_FLEET_SIM_STATE: "" } },
    );
    const records = JSON.parse(stdout) as Array<{ side: string; site: string; mapping: string; end: string }>;
    const web = records.filter((r) => r.mapping === "web" && r.end === "completed");
    assert.ok(
      web.some((r) => r.side === "gateway"),
      "the gateway's record",
    );
    assert.ok(
      web.some((r) => r.side === "module"),
      "the module's record, through the IoT Hub emulator",
    );
    assert.ok(records.every((r) => r.site === "plant-1"));
  });

  test("paging, and no page-wide horizontal scrolling at a 200 % zoom-sized viewport", async () => {
    await page.goto("about:blank");
    await page.goto(`${fleet.statusPageUrl}#/?size=25`);
    await row("plant-1").waitFor();
    assert.match(await page.locator("nav.pager").innerText(), /Page 1 of 1/);
    assert.equal(await page.locator("#next").isDisabled(), true);
    await page.setViewportSize({ width: 640, height: 800 });
    const overflow = Number(
      await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth"),
    );
    assert.ok(overflow <= 1, `page scrolls sideways by ${overflow}px`);
    // Skip link first in the tab order.
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate("document.activeElement.textContent"), "Skip to the sites");
  });
});
