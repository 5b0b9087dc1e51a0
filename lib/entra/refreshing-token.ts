/**
 * An Entra ID access token kept fresh in the background, for callers that need the current token
 * synchronously (a WebSocket upgrade header, a standby connection opened from a timer). Handled
 * like the SAS tokens it replaces: fetched before it is needed, refreshed well before expiry
 * (at the credential's `refreshAfterTimestamp`, else half-way through its remaining life), a
 * failed refresh is retried with backoff while the old token is still valid and reported through
 * `onRefresh` and `status()`. The token text never leaves through logs: errors carry the
 * credential's message only.
 */
import type { AccessToken, TokenCredential } from "@azure/identity";
import { backoffDelay } from "../backoff.ts";
import { errorMessage } from "../errors.ts";

export type TokenState = "pending" | "ok" | "refresh-failing" | "expired";

export interface TokenStatus {
  state: TokenState;
  /** Expiry of the token held, ms since the epoch. */
  expiresAt: number | undefined;
  /** Refreshes that failed in a row. */
  consecutiveFailures: number;
  /** Message of the last failure (no token material). */
  lastError: string | undefined;
}

export interface RefreshingTokenOptions {
  /** Called after every fetch attempt (metrics, logs). */
  onRefresh?: (result: "ok" | "failed", error?: string) => void;
  /** Shortest retry delay after a failure (steps double up to `maxRetryMs`, half of each random). */
  minRetryMs?: number;
  maxRetryMs?: number;
  /** Floor of the delay between refreshes, so a very short-lived token cannot spin. */
  minRefreshMs?: number;
  now?: () => number;
}

export class RefreshingToken {
  private token: AccessToken | undefined;
  private failures = 0;
  private lastError: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private inFlight: Promise<void> | undefined;
  private readonly now: () => number;

  constructor(
    private readonly credential: TokenCredential,
    private readonly scope: string,
    private readonly options: RefreshingTokenOptions = {},
  ) {
    this.now = options.now ?? Date.now;
  }

  /** Fetches the first token; resolves either way (a failure is retried in the background). */
  start(): Promise<void> {
    return this.refresh();
  }

  /** The token to present now, or undefined when none is valid (never fetched, or expired). */
  current(): string | undefined {
    const t = this.token;
    return t && t.expiresOnTimestamp > this.now() ? t.token : undefined;
  }

  status(): TokenStatus {
    const valid = this.current() !== undefined;
    const state: TokenState = !this.token
      ? this.failures > 0
        ? "expired"
        : "pending"
      : !valid
        ? "expired"
        : this.failures > 0
          ? "refresh-failing"
          : "ok";
    return {
      state,
      expiresAt: this.token?.expiresOnTimestamp,
      consecutiveFailures: this.failures,
      lastError: this.lastError,
    };
  }

  /** Fetches now (one fetch at a time) and schedules the next one. */
  refresh(): Promise<void> {
    this.inFlight ??= this.fetch().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private async fetch(): Promise<void> {
    if (this.closed) return;
    try {
      const t = await this.credential.getToken(this.scope);
      if (!t?.token) throw new Error("the credential returned no token");
      this.token = t;
      this.failures = 0;
      this.lastError = undefined;
      this.options.onRefresh?.("ok");
      const now = this.now();
      const at = t.refreshAfterTimestamp ?? now + (t.expiresOnTimestamp - now) / 2;
      this.schedule(Math.max(at - now, this.options.minRefreshMs ?? 500));
    } catch (err) {
      this.failures++;
      this.lastError = errorMessage(err).slice(0, 300);
      this.options.onRefresh?.("failed", this.lastError);
      const min = this.options.minRetryMs ?? 1000;
      const max = this.options.maxRetryMs ?? 30_000;
      // The project's backoff, half of each step random so a fleet of gateways that lost Entra ID
      // at one moment does not retry in lockstep; never sooner than minRetryMs.
      const step = backoffDelay({ initialMs: 2 * min, maxMs: max, jitter: 0.5 }, this.failures - 1);
      this.schedule(Math.max(min, step));
    }
  }

  private schedule(ms: number): void {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.refresh(), ms);
    this.timer.unref();
  }
}
