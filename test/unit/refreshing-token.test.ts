/**
 * RefreshingToken (lib/entra/refreshing-token.ts), the gateway's Entra ID token for Azure Relay:
 * refreshed before expiry (at the credential's refreshAfterTimestamp, else half-way), a failed
 * refresh retried with backoff while the old token stays in use and reported, an expired token
 * never presented, one fetch at a time, nothing after close(), and no token text in what it reports.
 * Real timers with lifetimes of a few hundred milliseconds.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { AccessToken, TokenCredential } from "@azure/identity";
import { RefreshingToken } from "../../lib/entra/refreshing-token.ts";
import { sleep, waitFor } from "../helpers/index.ts";

type Answer = { lifetimeMs: number; refreshAfterMs?: number } | Error;

/** A credential that answers from a script (the last answer repeats) and records each call. */
function scripted(answers: Answer[]): TokenCredential & { calls: number[]; tokens: string[] } {
  const calls: number[] = [];
  const tokens: string[] = [];
  return {
    calls,
    tokens,
    async getToken(): Promise<AccessToken> {
      calls.push(Date.now());
      const a = answers[Math.min(calls.length - 1, answers.length - 1)] as Answer;
      if (a instanceof Error) throw a;
      const token = `eyJhbGciOiJSUzI1NiJ9.eyJ0b2tlbiI6${calls.length}.c2ln`;
      tokens.push(token);
      return {
        token,
        expiresOnTimestamp: Date.now() + a.lifetimeMs,
        ...(a.refreshAfterMs !== undefined ? { refreshAfterTimestamp: Date.now() + a.refreshAfterMs } : {}),
      };
    },
  };
}

const fast = { minRefreshMs: 10, minRetryMs: 40, maxRetryMs: 80 };

describe("RefreshingToken", () => {
  it("refreshes half-way through the token's life, so a valid token is always held", async () => {
    const cred = scripted([{ lifetimeMs: 400 }]);
    const token = new RefreshingToken(cred, "https://relay.azure.net/.default", fast);
    assert.equal(token.status().state, "pending");
    assert.equal(token.current(), undefined);
    await token.start();
    const first = token.current();
    assert.equal(first, cred.tokens[0]);
    const firstExpiry = token.status().expiresAt ?? 0;
    // Sample for a while: the token held is never expired, and refreshes happen before expiry.
    const seen = new Set<string>();
    const until = Date.now() + 1_000;
    while (Date.now() < until) {
      const now = token.current();
      assert.ok(now, "a valid token is held at every moment");
      seen.add(now);
      await sleep(20);
    }
    token.close();
    assert.ok(cred.calls.length >= 3, `refreshed ${cred.calls.length - 1} times in 1 s of 400 ms tokens`);
    assert.ok((cred.calls[1] as number) < firstExpiry - 100, "the first refresh came well before expiry");
    assert.ok(seen.size >= 3, "new tokens were handed out");
    assert.equal(token.status().state, "ok");
  });

  it("follows the credential's refreshAfterTimestamp", async () => {
    const cred = scripted([{ lifetimeMs: 60_000, refreshAfterMs: 100 }]);
    const token = new RefreshingToken(cred, "scope", fast);
    await token.start();
    await waitFor(() => cred.calls.length >= 2, "the refresh at refreshAfterTimestamp", { timeoutMs: 2_000 });
    token.close();
    const gap = (cred.calls[1] as number) - (cred.calls[0] as number);
    assert.ok(gap >= 90 && gap < 1_000, `refreshed after ${gap} ms, not half of 60 s`);
  });

  it("a failed refresh is retried with backoff and reported; the old token is used until it expires", async () => {
    const failure = new Error("ManagedIdentityCredential: the identity endpoint answered 403");
    const cred = scripted([{ lifetimeMs: 500 }, failure]);
    const events: Array<{ result: string; error?: string }> = [];
    const token = new RefreshingToken(cred, "scope", {
      ...fast,
      onRefresh: (result, error) => events.push({ result, ...(error ? { error } : {}) }),
    });
    await token.start();
    const held = token.current();
    await waitFor(() => token.status().consecutiveFailures >= 1, "the first failed refresh", {
      timeoutMs: 2_000,
      intervalMs: 5,
    });
    // Still valid: the old token is presented and the state says the refresh is failing.
    assert.equal(token.current(), held);
    assert.equal(token.status().state, "refresh-failing");
    assert.equal(token.status().lastError, failure.message);
    await waitFor(() => token.status().state === "expired", "the old token to expire", { timeoutMs: 3_000 });
    assert.equal(token.current(), undefined, "an expired token is never presented");
    const failures = token.status().consecutiveFailures;
    assert.ok(failures >= 2, `retried: ${failures} failures`);
    // Backoff: retries are spaced by at least minRetryMs, never a tight loop.
    const retries = cred.calls.slice(1);
    for (let i = 1; i < retries.length; i++)
      assert.ok((retries[i] as number) - (retries[i - 1] as number) >= 35, "retries are spaced");
    assert.ok(events.some((e) => e.result === "ok"));
    assert.ok(events.filter((e) => e.result === "failed").every((e) => e.error === failure.message));
    // Nothing it reports carries a token.
    const reported = JSON.stringify([token.status(), events]);
    for (const t of cred.tokens) assert.ok(!reported.includes(t), "no token text in status or events");
    token.close();
  });

  it("recovers when the credential does: a new token, failures reset", async () => {
    const cred = scripted([new Error("endpoint down"), new Error("endpoint down"), { lifetimeMs: 10_000 }]);
    const token = new RefreshingToken(cred, "scope", fast);
    await token.start();
    assert.equal(token.current(), undefined);
    assert.equal(token.status().consecutiveFailures, 1);
    await waitFor(() => token.current() !== undefined, "a token once the credential recovers", {
      timeoutMs: 2_000,
    });
    const status = token.status();
    token.close();
    assert.equal(status.state, "ok");
    assert.equal(status.consecutiveFailures, 0);
    assert.equal(status.lastError, undefined);
  });

  it("one fetch at a time, and nothing after close()", async () => {
    let release: () => void = () => undefined;
    let calls = 0;
    const slow: TokenCredential = {
      getToken: () =>
        new Promise<AccessToken>((resolve) => {
          calls++;
          release = () => resolve({ token: "t", expiresOnTimestamp: Date.now() + 200 });
        }),
    };
    const token = new RefreshingToken(slow, "scope", fast);
    const a = token.start();
    const b = token.refresh();
    assert.equal(calls, 1, "concurrent refreshes share one fetch");
    release();
    await Promise.all([a, b]);
    token.close();
    await sleep(400);
    assert.equal(calls, 1, "no refresh after close()");
  });

  it("a credential that returns no token is a failure, not an empty token", async () => {
    const empty: TokenCredential = { getToken: async () => null };
    const token = new RefreshingToken(empty, "scope", fast);
    await token.start();
    token.close();
    assert.equal(token.current(), undefined);
    assert.match(token.status().lastError ?? "", /no token/);
  });
});
