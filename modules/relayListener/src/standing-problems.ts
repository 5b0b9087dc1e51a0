/**
 * Logs the problems of the desired properties as a set that changes, not as a list repeated:
 * a problem is logged once when it first appears and once when it clears. A standing problem
 * (one bad mapping while the rollout keeps patching others) would otherwise be logged again at
 * every desired version — tens of thousands of identical warnings a day on a busy site.
 * The reported properties' `errors` still carry the whole current list at every version.
 */
import type { Logger } from "../../../lib/log.ts";
import type { TwinError } from "../../../lib/twin/index.ts";

/** One problem's identity: where it is and what it says. */
function problemKey(e: TwinError): string {
  return `${e.path}\u0000${e.message}`;
}

export class StandingProblems {
  /** Problems of the last applied version, by key (a `Map`: paths are names chosen remotely). */
  private current = new Map<string, TwinError>();

  constructor(private readonly logger: Logger) {}

  /** The problems of the version just applied; logs what appeared and what cleared. */
  update(errors: readonly TwinError[], version: number | null): void {
    const next = new Map<string, TwinError>();
    for (const e of errors) next.set(problemKey(e), e);
    for (const [key, e] of next) {
      if (!this.current.has(key))
        this.logger.warn(
          { path: e.path, problem: e.message, desiredVersion: version },
          "desired property rejected",
        );
    }
    for (const [key, e] of this.current) {
      if (!next.has(key))
        this.logger.info(
          { path: e.path, problem: e.message, desiredVersion: version },
          "desired property problem cleared",
        );
    }
    this.current = next;
  }
}
