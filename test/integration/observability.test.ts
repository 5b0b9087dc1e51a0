/**
 * Dashboards and alerts against the real tools: the alert rules pass `promtool check rules`,
 * the gateway's /metrics (a real gateway process) and the module's /metrics (its health server)
 * pass `promtool check metrics`, and every metric a rule or a dashboard panel names is in that
 * output. A public port held by another process shows as gateway_ports_unbound. promtool comes
 * from Debian's `prometheus` package (.ci/run installs it); without it these tests skip.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { DROPPED_DEFAULT_METRICS } from "../../lib/default-metrics.ts";
import { ModuleMetrics, startHealthServer } from "../../modules/relayListener/src/metrics.ts";
import { REPO_ROOT, waitFor } from "../helpers/index.ts";
import {
  freePort,
  type GatewayProcess,
  type Harness,
  startGateway,
  startHarness,
} from "./gateway-harness.ts";

const RULES = join(REPO_ROOT, "observability/prometheus/relay-fleet-alerts.yml");
const DASHBOARD = join(REPO_ROOT, "observability/grafana/relay-fleet-dashboard.json");
const hasPromtool = spawnSync("promtool", ["--version"]).status === 0;
const skip = hasPromtool ? false : "promtool not installed (Debian package prometheus; .ci/run installs it)";

function promtool(args: string[], input?: string) {
  const r = spawnSync("promtool", args, { input, encoding: "utf8" });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/** Metric names (families) an exposition declares with `# TYPE`. */
function families(exposition: string): Set<string> {
  return new Set([...exposition.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1] as string));
}

/** Project metric names a PromQL text mentions (histogram series map to their family). */
function projectMetrics(promql: string): string[] {
  return [...promql.matchAll(/\b((?:gateway|relay_listener)_[a-z_]+)\b/g)].map((m) =>
    (m[1] as string).replace(/_(bucket|sum|count)$/, ""),
  );
}

function ruleExpressions(): string[] {
  // Each `expr:` is one line or a `|` block indented below it.
  const lines = readFileSync(RULES, "utf8").split("\n");
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^(\s*)expr:\s*(.*)$/.exec(lines[i] as string);
    if (!m) continue;
    if (m[2] !== "|") {
      out.push(m[2] as string);
      continue;
    }
    const block: string[] = [];
    while (i + 1 < lines.length && /^\s*$|^\s{12,}/.test(lines[i + 1] as string))
      block.push(lines[++i] as string);
    out.push(block.join("\n"));
  }
  return out;
}

function dashboardExpressions(): string[] {
  const d = JSON.parse(readFileSync(DASHBOARD, "utf8")) as {
    panels: Array<{ type: string; targets?: Array<{ expr: string }> }>;
  };
  return d.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
}

describe("Prometheus rules, metrics and the Grafana dashboard", { skip, timeout: 120_000 }, () => {
  const cleanups: Array<() => unknown> = [];
  const ctx = { after: (fn: () => unknown) => cleanups.push(fn) };
  let h: Harness;
  let gw: GatewayProcess;
  let gatewayText = "";
  let moduleText = "";

  before(async () => {
    h = await startHarness(ctx, "obs");
    // A public port another process holds: the gateway cannot bind it.
    const squatter = createServer();
    await new Promise<void>((r) => squatter.listen(0, "127.0.0.1", r));
    cleanups.push(() => squatter.close());
    const taken = (squatter.address() as { port: number }).port;
    const free = await freePort();
    await h.ledger.allocate({ siteId: h.siteId, portName: "web", endpoint: { kind: "tcp", port: free } });
    await h.ledger.allocate({ siteId: h.siteId, portName: "db", endpoint: { kind: "tcp", port: taken } });
    gw = await startGateway(ctx, h);
    // Traffic with no listener: refused (no_listener), so the labelled series exist too.
    await new Promise<void>((resolve) => {
      const s = connectUntilClosed(free, resolve);
      cleanups.push(() => s.destroy());
    });
    await waitFor(
      async () => (await gw.metric("gateway_connections_refused_total", { reason: "no_listener" })) > 0,
      "a refusal",
    );
    gatewayText = (await gw.admin("/metrics")).text;

    const metrics = new ModuleMetrics(() => ({
      activeByMapping: { web: 1 },
      listenersOnline: 1,
      appliedDesiredVersion: 3,
      twinErrors: 0,
      standbyHeld: 2,
    }));
    metrics.connections.inc({ mapping: "web", outcome: "accepted" });
    metrics.bytes.inc({ mapping: "web", direction: "in" }, 10);
    const health = await startHealthServer(metrics, () => ({ ok: true, detail: {} }), 0, "127.0.0.1");
    cleanups.push(() => health.close());
    moduleText = await (await fetch(`http://127.0.0.1:${health.port}/metrics`)).text();
  });
  after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });

  test("the alert rules pass promtool check rules and cover every alert observability/README.md describes", () => {
    const r = promtool(["check", "rules", RULES]);
    assert.equal(r.status, 0, r.output);
    assert.match(r.output, /SUCCESS: 7 rules found/);
    const text = readFileSync(RULES, "utf8");
    for (const alert of [
      "RelayListenerOffline",
      "RelayFleetNoListenerForTrafficSite",
      "RelayFleetCircuitOpen",
      "RelayFleetHighRefusalRate",
      "RelayFleetPublicPortUnbound",
      "RelayListenerReportedDrift",
      "RelayFleetTunnelSetupSlow",
    ])
      assert.match(text, new RegExp(`alert: ${alert}\\n`));
  });

  test("the gateway's /metrics passes promtool check metrics", () => {
    for (const name of DROPPED_DEFAULT_METRICS) assert.ok(!gatewayText.includes(name), `${name} is dropped`);
    assert.ok(gatewayText.includes("nodejs_active_handles"), "the per-type default gauges stay");
    const r = promtool(["check", "metrics"], gatewayText);
    assert.equal(r.status, 0, r.output);
  });

  test("the module's /metrics passes promtool check metrics", () => {
    assert.match(moduleText, /relay_listener_connections_total\{mapping="web",outcome="accepted"\} 1/);
    const r = promtool(["check", "metrics"], moduleText);
    assert.equal(r.status, 0, r.output);
  });

  test("a public port held by another process counts in gateway_ports_unbound", async () => {
    assert.equal(await gw.metric("gateway_ports_unbound", {}), 1);
    assert.equal(await gw.metric("gateway_listening_ports", {}), 1);
  });

  test("the gateway logs one JSON audit record for the refused tunnel, with nothing secret in it", async () => {
    const line = await waitFor(
      () =>
        gw.proc
          .stdout()
          .split("\n")
          .find((l) => l.includes('"event":"audit"') && l.includes('"reason":"no_listener"')),
      "the audit line",
    );
    const { audit } = JSON.parse(line) as { audit: Record<string, unknown> };
    assert.equal(audit.side, "gateway");
    assert.equal(audit.site, "obs");
    assert.equal(audit.mapping, "web");
    assert.equal(audit.end, "refused");
    assert.match(String(audit.client), /^127\.0\.0\.1:\d+$/);
    assert.equal(typeof audit.durationMs, "number");
    assert.ok(!line.includes(h.sendKey) && !line.includes(h.listenKey), "no key in the record");
  });

  test("every metric a rule or a panel names exists in the gateway's or the module's output", () => {
    const known = new Set([...families(gatewayText), ...families(moduleText)]);
    const rules = ruleExpressions();
    const panels = dashboardExpressions();
    assert.equal(rules.length, 7);
    assert.ok(panels.length >= 15);
    const named = new Set([...rules, ...panels].flatMap(projectMetrics));
    assert.ok(named.size >= 15, `rules and panels name ${named.size} metrics`);
    const missing = [...named].filter((n) => !known.has(n));
    assert.deepEqual(missing, [], "metrics named but not exported");
  });
});

/** Connects and resolves once the gateway closes the connection. */
function connectUntilClosed(port: number, done: () => void) {
  const s = connect({ port, host: "127.0.0.1" });
  s.on("error", () => {});
  s.on("close", () => done());
  return s;
}
