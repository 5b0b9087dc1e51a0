/**
 * Warnings once per change (hardening item 10): a standing problem in the desired properties is
 * logged when it appears and when it clears, not again at every desired version.
 */
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { Writable } from "node:stream";
import { test } from "node:test";
import { createLogger } from "../../lib/log.ts";
import { allowlistFrom } from "../../modules/relayListener/src/allowlist.ts";
import { Reconciler } from "../../modules/relayListener/src/reconciler.ts";
import type { RelayListener } from "../../modules/relayListener/src/relay-listener.ts";
import { StandingProblems } from "../../modules/relayListener/src/standing-problems.ts";

function capture() {
  const lines: { msg: string; path?: string; level: string }[] = [];
  const sink = new Writable({
    write(chunk, _e, cb) {
      for (const line of String(chunk).split("\n").filter(Boolean)) lines.push(JSON.parse(line));
      cb();
    },
  });
  return { lines, logger: createLogger("test", { destination: sink, level: "info" }) };
}

class IdleListener extends EventEmitter {
  state = { status: "online" as const, since: Date.now() };
  start() {}
  async close() {}
  updateCredentials() {}
}

test("a standing twin problem is logged once over 200 desired versions, and once when it clears", async () => {
  const { lines, logger } = capture();
  const rec = new Reconciler({
    listenerFactory: () => new IdleListener() as unknown as RelayListener,
    listenerCount: 1,
    allowlist: allowlistFrom("127.0.0.0/8:1-9998", async () => []),
    logger,
    preambleTimeoutMs: 1000,
    keepAliveMs: 1000,
  });
  for (let v = 1; v <= 200; v++) {
    await rec.applyDesired(
      { mappings: { good: { target: `127.0.0.1:${1000 + v}` }, bad: { target: "no port" } }, $version: v },
      v,
    );
  }
  const rejected = lines.filter((l) => l.msg === "desired property rejected");
  assert.equal(rejected.length, 1, `${rejected.length} warnings for one standing problem`);
  assert.match(rejected[0]?.path ?? "", /^mappings\.bad/);
  assert.ok(rec.state().errors.length >= 1, "the reported errors still list it");

  await rec.applyDesired({ mappings: { good: { target: "127.0.0.1:80" } }, $version: 201 }, 201);
  const cleared = lines.filter((l) => l.msg === "desired property problem cleared");
  assert.equal(cleared.length, 1);
  assert.equal(lines.filter((l) => l.msg === "desired property rejected").length, 1);
  assert.deepEqual(rec.state().errors, []);
});

test("a problem that changes its message is a new problem: the old one clears, the new one is logged", () => {
  const { lines, logger } = capture();
  const problems = new StandingProblems(logger);
  problems.update([{ path: "mappings.a.target", message: "bad port" }], 1);
  problems.update([{ path: "mappings.a.target", message: "bad host" }], 2);
  problems.update([{ path: "mappings.a.target", message: "bad host" }], 3);
  assert.deepEqual(
    lines.map((l) => l.msg),
    ["desired property rejected", "desired property rejected", "desired property problem cleared"],
  );
});

test("problems at paths named like Object.prototype members are tracked like any other", () => {
  const { lines, logger } = capture();
  const problems = new StandingProblems(logger);
  for (let v = 1; v <= 3; v++)
    problems.update(
      [
        { path: "__proto__", message: "x" },
        { path: "constructor", message: "y" },
      ],
      v,
    );
  assert.equal(lines.length, 2);
});
