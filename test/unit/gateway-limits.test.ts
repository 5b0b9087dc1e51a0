import assert from "node:assert/strict";
import { test } from "node:test";
import { withGatewayDrift } from "../../cloud/functions/src/rollout/status.ts";
import { CircuitBreaker } from "../../cloud/gateway/src/circuit-breaker.ts";
import { RateLimiter } from "../../cloud/gateway/src/rate-limiter.ts";
import { RouteStates } from "../../cloud/gateway/src/route-state.ts";

test("rate limiter: burst of `rate`, then refill at rate per minute, per source", () => {
  let now = 0;
  const rl = new RateLimiter({ ratePerMinute: 3, now: () => now });
  assert.deepEqual([rl.take("a"), rl.take("a"), rl.take("a"), rl.take("a")], [true, true, true, false]);
  assert.ok(rl.take("b"), "other sources have their own bucket");
  now += 19_999;
  assert.ok(!rl.take("a"));
  now += 1;
  assert.ok(rl.take("a"), "one token back after 20 s at 3/min");
  assert.ok(!rl.take("a"));
});

test("rate limiter: 0 is unlimited; sweep forgets full buckets; tracked sources are capped", () => {
  let now = 0;
  assert.ok(
    Array.from({ length: 1000 }, () => new RateLimiter({ ratePerMinute: 0 }).take("x")).every(Boolean),
  );
  const rl = new RateLimiter({ ratePerMinute: 60, maxSources: 2, now: () => now });
  assert.ok(rl.take("a"));
  assert.ok(rl.take("b"));
  assert.ok(!rl.take("c"), "no room for a third source while the others are not refilled");
  now += 2_000;
  assert.ok(rl.take("c"), "a sweep made room");
  now += 60_000;
  rl.sweep();
  assert.equal(rl.trackedSources, 0);
});

test("route states: the cap counts live connections and survives limit changes", () => {
  const s = new RouteStates();
  const cap = (max: number, ratePerMinute = 0) => ({ max, perSource: 0, ratePerMinute });
  assert.equal(s.acquire("r", cap(2), "a"), undefined);
  assert.equal(s.acquire("r", cap(2), "a"), undefined);
  assert.equal(s.acquire("r", cap(2), "a"), "max_connections");
  assert.equal(s.acquire("r", cap(3, 10), "a"), undefined, "raising the cap applies to the next connection");
  s.release("r", "a");
  assert.equal(s.active("r"), 2);
  s.prune(new Set());
  assert.equal(s.active("r"), 2, "a removed route keeps counting its live connections");
  s.release("r", "a");
  s.release("r", "a");
  s.prune(new Set());
  assert.equal(s.active("r"), 0);
});

test("route states: one address holds at most its per-source share; others still get in", () => {
  const s = new RouteStates();
  const limits = { max: 5, perSource: 2, ratePerMinute: 0 };
  assert.equal(s.acquire("r", limits, "10.0.0.1"), undefined);
  assert.equal(s.acquire("r", limits, "10.0.0.1"), undefined);
  assert.equal(s.acquire("r", limits, "10.0.0.1"), "max_connections_per_source");
  assert.equal(s.acquire("r", limits, "10.0.0.2"), undefined, "another address is not held up");
  assert.equal(s.activeFrom("r", "10.0.0.1"), 2);
  s.release("r", "10.0.0.1");
  assert.equal(s.acquire("r", limits, "10.0.0.1"), undefined, "a freed slot is the address's again");
  for (const a of ["10.0.0.1", "10.0.0.1", "10.0.0.2"]) s.release("r", a);
  assert.equal(s.activeFrom("r", "10.0.0.1"), 0, "an address without connections is forgotten");
  assert.equal(s.active("r"), 0);
});

test("circuit breaker: opens after the threshold, one probe when half-open, doubles the backoff", () => {
  let now = 0;
  const b = new CircuitBreaker({
    threshold: 3,
    initialBackoffMs: 1000,
    maxBackoffMs: 4000,
    jitter: 0,
    now: () => now,
  });
  for (let i = 0; i < 2; i++) {
    assert.ok(b.tryAcquire("s"));
    b.onFailure("s");
  }
  assert.equal(b.state("s"), "closed");
  assert.ok(b.tryAcquire("s"));
  b.onFailure("s");
  assert.equal(b.state("s"), "open");
  assert.ok(!b.tryAcquire("s"));
  assert.ok(b.tryAcquire("other"), "other sites are not affected");
  now += 1000;
  assert.equal(b.state("s"), "half-open");
  assert.ok(b.tryAcquire("s"), "one probe");
  assert.ok(!b.tryAcquire("s"), "only one probe at a time");
  b.onFailure("s");
  now += 1999;
  assert.ok(!b.tryAcquire("s"), "backoff doubled to 2 s");
  now += 1;
  assert.ok(b.tryAcquire("s"));
  b.onSuccess("s");
  assert.equal(b.state("s"), "closed");
  assert.ok(b.tryAcquire("s"));
});

test("status: a port a current gateway cannot bind is its site's drift; a stale report is not", () => {
  const now = Date.parse("2026-01-01T00:10:00Z");
  const site = (siteId: string) => ({
    siteId,
    deviceId: siteId,
    listenerOnline: true,
    listenerStatus: "online",
    mappings: 1,
    activeConnections: 0,
    desiredVersion: 2,
    appliedVersion: 2,
    drift: [],
  });
  const route = (port: number, siteId: string, portName: string) => ({
    rowKey: String(port),
    kind: "tcp" as const,
    port,
    siteId,
    portName,
    allowCidrs: [],
    maxConnections: 0,
    ratePerMinute: 0,
    proxyProtocol: false,
  });
  const unbound = [{ port: 21005, error: "listen EADDRINUSE", since: "2026-01-01T00:09:00Z", attempts: 3 }];
  const report = (instanceId: string, updatedAt: string) => ({
    instanceId,
    updatedAt,
    heartbeatMs: 30_000,
    ready: true,
    listening: 1,
    unbound,
  });
  const { sites, gateways } = withGatewayDrift(
    [site("plant-1"), site("plant-2")],
    [report("gw-a", "2026-01-01T00:09:50Z"), report("gw-old", "2026-01-01T00:00:00Z")],
    [route(21005, "plant-2", "ssh"), route(21006, "plant-1", "web")],
    now,
  );
  assert.deepEqual(sites[0]?.drift, []);
  assert.deepEqual(sites[1]?.drift, [
    "public port 21005 (ssh) not listening on gateway gw-a: listen EADDRINUSE",
  ]);
  assert.deepEqual(
    gateways.map((g) => [g.instanceId, g.stale]),
    [
      ["gw-a", false],
      ["gw-old", true],
    ],
  );
});

test("circuit breaker: jitter never keeps a circuit open past maxBackoffMs", () => {
  // The breaker's own symmetric jitter opened a circuit for 0.8-1.2 × the step, so up to 20 %
  // past the cap; the project's backoff only shortens a step (0.8-1 × with jitter 0.2).
  let now = 0;
  const opts = { threshold: 1, maxBackoffMs: 1_000, jitter: 0.2, now: () => now };
  const high = new CircuitBreaker({ ...opts, random: () => 0.999 });
  high.onFailure("s");
  now = 1_000;
  assert.equal(high.state("s"), "half-open", "never open past the cap");
  now = 0;
  const low = new CircuitBreaker({ ...opts, random: () => 0 });
  low.onFailure("s");
  now = 999;
  assert.equal(low.state("s"), "open", "no jitter drawn: the whole step");
});
