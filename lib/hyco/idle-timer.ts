/**
 * The pump's idle limit: fires once no byte has gone either way for `idleMs`. Each byte only
 * stamps the time (no timer work on the hot path); the timer re-arms for what is left of the
 * period, so it fires `idleMs` after the last byte (a fixed-period check would take up to twice
 * that).
 */
export class IdleTimer {
  private lastActivity = Date.now();
  private timer: NodeJS.Timeout | undefined;

  /** `idleMs` 0 or less: never fires. */
  constructor(
    private readonly idleMs: number,
    private readonly onIdle: () => void,
  ) {
    if (idleMs > 0) this.arm(idleMs);
  }

  /** A byte went one way or the other. */
  touch(): void {
    this.lastActivity = Date.now();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(ms: number): void {
    this.timer = setTimeout(() => this.check(), ms);
    this.timer.unref();
  }

  private check(): void {
    const quietFor = Date.now() - this.lastActivity;
    if (quietFor < this.idleMs) {
      this.arm(this.idleMs - quietFor);
      return;
    }
    this.timer = undefined;
    this.onIdle();
  }
}
