/**
 * The identity emulator's admin API refuses bad bodies with a clear 4xx and a code
 * (sim/identity-emulator): not JSON, failing validation, too large (the client reads the 413
 * rather than a reset), an unknown identity; and a refused request leaves nothing behind.
 */
import assert from "node:assert/strict";
import { request } from "node:http";
import { test } from "node:test";
import { startIdentityEmulator } from "../../sim/identity-emulator/index.ts";

/** One admin POST over a raw request (a body larger than the limit is written whole). */
function post(url: string, token: string, path: string, body: string) {
  return new Promise<{ status: number; body: { error?: string; code?: string } }>((resolve, reject) => {
    const req = request(`${url}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    });
    req.on("response", (res) => {
      let text = "";
      res.on("data", (d: Buffer) => {
        text += d.toString();
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

test("identity emulator admin: bad bodies get a clear 4xx with a code, nothing is created", async (t) => {
  const emu = await startIdentityEmulator();
  t.after(() => emu.close());
  const admin = (path: string, body: string) => post(emu.url, emu.adminToken, path, body);
  const [notJson, badName, badFault, unknown, huge] = await Promise.all([
    admin("/admin/identities", "{name:"),
    admin("/admin/identities", JSON.stringify({ name: "has space" })),
    admin("/admin/faults", JSON.stringify({ identity: "x", fail: "yes" })),
    admin("/admin/faults", JSON.stringify({ identity: "nobody", fail: true })),
    admin("/admin/identities", JSON.stringify({ name: "a".repeat(20_000) })),
  ]);
  assert.deepEqual(notJson, {
    status: 400,
    body: { error: "request body is not JSON", code: "RF_ERR_IDENTITYEMU_INVALID" },
  });
  assert.equal(badName.status, 400);
  assert.equal(badName.body.code, "RF_ERR_IDENTITYEMU_INVALID");
  assert.match(badName.body.error ?? "", /^invalid request body: name: /);
  assert.equal(badFault.status, 400);
  assert.match(badFault.body.error ?? "", /fail: /);
  assert.deepEqual(unknown, {
    status: 404,
    body: { error: "no identity named nobody", code: "RF_ERR_IDENTITYEMU_NOT_FOUND" },
  });
  assert.equal(huge.status, 413);
  assert.equal(huge.body.code, "RF_ERR_IDENTITYEMU_TOO_LARGE");
  assert.equal(emu.identity("has space"), undefined, "the refused identity was not created");
  // The emulator still serves.
  const ok = await admin("/admin/identities", JSON.stringify({ name: "gw" }));
  assert.equal(ok.status, 200);
  assert.equal(emu.identity("gw")?.name, "gw");
});
