/**
 * HTTP-mode relay requests get an answer (hardening item 20): a plain HTTP request to a hybrid
 * connection that has listeners is answered "not supported" (501), not "not found"; one to a name
 * nobody listens on stays 404.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { HybridConnectionListener } from "../../lib/hyco/listener.ts";
import { startRelayEmulator } from "../../sim/relay-emulator/index.ts";
import { waitFor } from "../helpers/index.ts";

test("a plain HTTP request to a listened hybrid connection answers 501 not supported", async (t) => {
  const relay = await startRelayEmulator();
  t.after(() => relay.close());
  relay.admin.putHybridConnection("site-h");
  relay.admin.putHybridConnection("site-idle");
  const rule = relay.admin.putAuthorizationRule("site-h", "listen", ["Listen"]).rule;
  const listener = new HybridConnectionListener({
    endpoint: relay.url,
    hybridConnection: "site-h",
    keyName: "listen",
    key: rule.primaryKey,
  });
  t.after(() => listener.close());
  listener.start();
  await waitFor(() => listener.state.status === "online", "listener online");
  const base = relay.url.replace(/^ws/, "http");

  for (const path of ["/site-h", "/$hc/site-h/some/suffix?x=1"]) {
    const res = await fetch(`${base}${path}`, { method: "POST", body: "hello" });
    const body = (await res.json()) as { error: { message: string } };
    assert.equal(res.status, 501, path);
    assert.match(body.error.message, /not supported/);
  }
  const idle = await fetch(`${base}/site-idle`);
  await idle.arrayBuffer();
  assert.equal(idle.status, 404, "no listener: nothing would serve it");
  const unknown = await fetch(`${base}/nothing-here`);
  await unknown.arrayBuffer();
  assert.equal(unknown.status, 404);
});
