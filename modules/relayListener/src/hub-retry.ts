/**
 * How the module reconnects to IoT Hub, sized to the fleet (issue 18, ADR 0027). After a hub
 * outage every module of the fleet reconnects at once unless told otherwise, and IoT Hub refuses
 * new connections above its quota (S1: 100 a second per hub). So each module retries once per
 * spread period `fleetSize / connectsPerSecond` on its own phase: together the fleet arrives
 * evenly at the budget, and all are back one period after the hub is. The phase is the one the
 * rollout gave the module in its twin (`hubReconnect.phase`, from a low-discrepancy sequence over
 * the fleet: evenly spread, ADR 0031), else a random one of its own (ADR 0027).
 *
 * The same slots serve the SDK's own retries (its `RetryPolicy`: re-enabling twin and methods
 * after a drop) and the module's re-open after the SDK gave up (`HubConnection`), so a module
 * never makes two connection attempts in one period from two loops. `HubConnectGate` holds every
 * connection attempt after a loss to the next slot, the SDK's immediate one too (hub-transport.ts).
 */
import { fleetSpreadPeriodMs, nextSlotDelay, type RetrySchedule } from "../../../lib/backoff.ts";

/** The fleet's size and new-connection budget, as the deployment tells the module. */
export interface HubReconnectSettings {
  /** Modules that may reconnect together (the fleet, or an upper bound of it). */
  fleetSize: number;
  /** New connections a second the whole fleet may open: a share of the hub's quota. */
  connectsPerSecond: number;
  /** Shortest period, so a small fleet does not hammer a hub that refuses it. */
  minPeriodMs: number;
}

/**
 * Errors the device SDK's default filter retries (azure-iot-common `DefaultErrorFilter`); any
 * other error ends the SDK's retry and reaches the module's own `disconnect` handling.
 */
const RETRIABLE = new Set([
  "NotConnectedError",
  "InternalServerError",
  "ServiceUnavailableError",
  "ThrottlingError",
  "TimeoutError",
]);

/** The part of azure-iot-common's `RetryPolicy` the SDK calls. */
export interface SdkRetryPolicy {
  shouldRetry(error: Error): boolean;
  nextRetryTimeout(retryCount: number, isThrottled: boolean): number;
}

/**
 * The clock the slots are on: the wall clock, the one time every module of the fleet shares (an
 * edge device keeps it synchronised; its SAS tokens for the hub and the relay need that anyway).
 * A process's own clock (`performance.now()`, counted from the process's start) would put each
 * module's phase at a different place, and evenly spread phases (ADR 0031) would arrive as if
 * random. A step of the wall clock moves the next slot once; the slots keep no state to corrupt.
 */
export const fleetClock = (): number => Date.now();

export class HubReconnectSlots implements SdkRetryPolicy {
  readonly periodMs: number;
  /** 0 ≤ phase < 1: where in each period this module's slot lies (see {@link usePhase}). */
  private current: number;
  /** Where the phase came from: the twin (`assigned`) or the module itself (`random`). */
  private origin: "assigned" | "random" = "random";

  constructor(
    readonly settings: HubReconnectSettings,
    /** 0 ≤ phase < 1: the module's own phase, random per module, kept until the twin gives one. */
    readonly ownPhase: number = Math.min(Math.random(), 0.999_999),
    private readonly now: () => number = fleetClock,
  ) {
    this.periodMs = fleetSpreadPeriodMs(settings.fleetSize, settings.connectsPerSecond, settings.minPeriodMs);
    this.current = ownPhase;
  }

  get phase(): number {
    return this.current;
  }

  get phaseOrigin(): "assigned" | "random" {
    return this.origin;
  }

  /**
   * Takes the phase the rollout assigned (the twin's `hubReconnect.phase`, validated by the twin
   * contract), or goes back to the module's own random phase when there is none (a site from
   * before ADR 0031, or the part was removed). A value outside [0, 1) is ignored: the slots keep
   * what they had. Every later slot, the gate's and the SDK's retries, follows at once.
   */
  usePhase(phase: number | undefined): void {
    if (phase === undefined) {
      this.current = this.ownPhase;
      this.origin = "random";
      return;
    }
    if (!(phase >= 0 && phase < 1)) return;
    this.current = phase;
    this.origin = "assigned";
  }

  /**
   * Delay to this module's next slot at least a second (or half a period) away: an attempt that
   * failed at once waits for the next slot, and a timer that fired a little early cannot take
   * its own slot twice.
   */
  delayToNextSlot(): number {
    return nextSlotDelay(this.periodMs, this.phase, Math.min(this.periodMs / 2, 1_000), this.now());
  }

  shouldRetry(error: Error): boolean {
    return RETRIABLE.has(error?.name);
  }

  /** The SDK's retries (throttled or not) wait for the module's slot. */
  nextRetryTimeout(_retryCount: number, _isThrottled: boolean): number {
    return this.delayToNextSlot();
  }

  /** A schedule for one retry loop (`HubConnection.open`) on the same slots. */
  schedule(): RetrySchedule {
    let failures = 0;
    return {
      next: () => {
        failures++;
        return this.delayToNextSlot();
      },
      reset: () => {
        failures = 0;
      },
      get attempts() {
        return failures;
      },
    };
  }
}

/**
 * When the module's MQTT transport may open a connection. Until the first connection succeeded
 * anything goes (a fleet does not start within a second, and the first open has its own
 * backoff). After that, once a connection was lost or an attempt failed, the next attempt waits
 * for the module's first slot at least a second after the loss, whichever loop asks for it: the
 * SDK's immediate reconnect inside its disconnect handler, its retries, a twin call that connects
 * on demand, or the module's re-open. So a fleet that lost the hub together sends at most one
 * CONNECT a module per period, on its phase, even when the hub drops everyone and is back at once.
 */
export class HubConnectGate {
  private everConnected = false;
  /** When ({@link fleetClock}) the last loss or failed attempt came, if one came since the last success. */
  private lostAt: number | undefined;

  constructor(
    private readonly slots: HubReconnectSlots,
    private readonly now: () => number = fleetClock,
  ) {}

  /** Milliseconds the next connection attempt must wait (0: go now). */
  delayBeforeConnect(): number {
    if (!this.everConnected || this.lostAt === undefined) return 0;
    const { periodMs, phase } = this.slots;
    const gap = Math.min(periodMs / 2, 1_000);
    const slotAt = this.lostAt + nextSlotDelay(periodMs, phase, gap, this.lostAt);
    return Math.max(0, Math.ceil(slotAt - this.now()));
  }

  connected(): void {
    this.everConnected = true;
    this.lostAt = undefined;
  }

  /** An attempt failed. */
  lost(): void {
    if (this.everConnected) this.lostAt = this.now();
  }

  /** Told when an open connection drops (the module's `HubConnection.transportLost`). */
  onDropped: (() => void) | undefined;

  /** An open connection dropped. */
  dropped(): void {
    this.lost();
    this.onDropped?.();
  }
}
