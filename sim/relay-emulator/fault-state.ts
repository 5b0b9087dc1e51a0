/**
 * What fault injection leaves for the handlers to consult: refusals and delays of the next
 * rendezvous, and an outage window. Set through faults.ts (in-process or `POST /$admin/faults`).
 */

export interface Refusal {
  hybridConnection: string | undefined;
  status: number;
  description: string;
  remaining: number;
}

export interface Delay {
  hybridConnection: string | undefined;
  ms: number;
  remaining: number;
}

/** Mutable fault state consulted by the handlers. */
export class FaultState {
  refusals: Refusal[] = [];
  delays: Delay[] = [];
  /** Epoch ms until which new TCP connections are refused; 0 = none. */
  outageUntil = 0;
  outageMode: "reset" | "refuse" = "reset";

  private take<T extends { hybridConnection: string | undefined; remaining: number }>(
    list: T[],
    hc: string,
  ): T | undefined {
    const i = list.findIndex(
      (f) => f.hybridConnection === undefined || f.hybridConnection.toLowerCase() === hc.toLowerCase(),
    );
    if (i < 0) return undefined;
    const f = list[i]!;
    f.remaining--;
    if (f.remaining <= 0) list.splice(i, 1);
    return f;
  }

  takeRefusal(hc: string): Refusal | undefined {
    return this.take(this.refusals, hc);
  }

  takeDelay(hc: string): Delay | undefined {
    return this.take(this.delays, hc);
  }

  outageActive(now = Date.now()): boolean {
    return this.outageUntil > now;
  }
}
