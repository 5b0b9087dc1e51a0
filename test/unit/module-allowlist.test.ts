import assert from "node:assert/strict";
import { test } from "node:test";
import {
  Allowlist,
  allowlistFrom,
  type Lookup,
  parseAllowlist,
} from "../../modules/relayListener/src/allowlist.ts";

const dns: Record<string, string[]> = {
  "plc.plant.local": ["10.1.2.3"],
  "hmi.plant.local": ["10.1.2.4"],
  "evil.plant.local": ["169.254.169.254"],
  "loop.example": ["127.0.0.1"],
  "outside.example": ["8.8.8.8"],
};
const lookup: Lookup = async (host) => {
  const a = dns[host];
  if (!a) throw Object.assign(new Error("not found"), { code: "ENOTFOUND" });
  return a.map((address) => ({ address, family: 4 }));
};

const list = allowlistFrom(
  "10.0.0.0/8:22,3389; [fd00::/8]:443\n plc.plant.local:502 # PLC\n*.plant.local:8000-8100",
  lookup,
);

const cases: Array<[string, number, boolean, RegExp?]> = [
  ["10.0.0.5", 3389, true],
  ["10.0.0.5", 22, true],
  ["10.0.0.5", 23, false, /outside/],
  ["11.0.0.5", 22, false],
  ["fd00::5", 443, true],
  ["::ffff:10.0.0.5", 22, true],
  ["plc.plant.local", 502, true],
  ["plc.plant.local", 22, true], // not by name, but its address is in 10/8 with port 22
  ["plc.plant.local", 503, false],
  ["hmi.plant.local", 8080, true],
  ["evil.plant.local", 8080, false, /169\.254/], // name matches, address is link-local: denied
  ["outside.example", 22, false],
  ["missing.example", 22, false, /cannot resolve/],
  ["169.254.169.254", 80, false],
  ["127.0.0.1", 22, false],
];

for (const [host, port, allowed, reason] of cases) {
  test(`allowlist: ${host}:${port} -> ${allowed ? "allowed" : "refused"}`, async () => {
    const d = await list.check(host, port);
    assert.equal(d.allowed, allowed, JSON.stringify(d));
    if (!d.allowed && reason) assert.match(d.reason, reason);
  });
}

test("unset allowlist denies everything with a clear reason", async () => {
  const d = await new Allowlist(undefined).check("10.0.0.1", 22);
  assert.equal(d.allowed, false);
  assert.match(d.allowed ? "" : d.reason, /no local allowlist on the device/);
});

test("loopback only when named explicitly; link-local never, even under 0.0.0.0/0", async () => {
  const wide = allowlistFrom("0.0.0.0/0:*", lookup);
  assert.equal((await wide.check("127.0.0.1", 80)).allowed, false);
  assert.equal((await wide.check("169.254.169.254", 80)).allowed, false);
  assert.equal((await wide.check("8.8.8.8", 80)).allowed, true);
  const loop = allowlistFrom("127.0.0.0/8:*", lookup);
  assert.equal((await loop.check("127.0.0.1", 80)).allowed, true);
  assert.equal((await loop.check("loop.example", 80)).allowed, true);
});

test("'private' expands to RFC 1918 + ULA", async () => {
  const p = allowlistFrom("private", lookup);
  assert.equal((await p.check("192.168.1.1", 1)).allowed, true);
  assert.equal((await p.check("8.8.8.8", 1)).allowed, false);
});

for (const bad of ["10.0.0.0/33", "host:0", "host:70000", "[fd00::", "a..b", "10.0.0.1:22-21", "*.:22"]) {
  test(`bad entry '${bad}' is rejected with RF_ERR_ALLOWLIST_ENTRY`, () => {
    assert.throws(
      () => parseAllowlist(bad),
      (err: unknown) => (err as { code?: string }).code === "RF_ERR_ALLOWLIST_ENTRY",
    );
  });
}
