/**
 * A per-minute budget for twin queries. IoT Hub throttles queries hard (S1: 20 per minute per
 * unit) and answers 429; with a budget set, code that polls queries in a loop fails in tests too.
 */
import { HubError } from "../errors.ts";

export class QueryThrottle {
  private readonly perMinute: number;
  private readonly stamps: number[] = [];

  /** `perMinute` 0 disables throttling. */
  constructor(perMinute = 0) {
    this.perMinute = perMinute;
  }

  /** Counts one query operation (one page); throws 429 ThrottlingException past the budget. */
  take(now = Date.now()): void {
    if (this.perMinute <= 0) return;
    while (this.stamps.length > 0 && this.stamps[0]! <= now - 60_000) this.stamps.shift();
    if (this.stamps.length >= this.perMinute)
      throw new HubError(
        "ThrottlingException",
        `Query throttled: more than ${this.perMinute} query operations in one minute`,
      );
    this.stamps.push(now);
  }
}
