/**
 * Deadlines for IoT Hub SDK calls. The SDK keeps an operation pending when the hub dies with it in
 * flight (a reported-properties update, a twin read) and may never call back; without a deadline
 * the caller waits for good. Every SDK call the module makes goes through {@link withDeadline}.
 */
import { hasErrorCode, RelayFleetError } from "../../../lib/errors.ts";

/** Code of the error a call that got no answer in time rejects with. */
export const DEADLINE_CODE = "RF_ERR_MODULE_IOTHUB_TIMEOUT";

/**
 * `p`, or a rejection with {@link DEADLINE_CODE} once `ms` have passed. The call itself is not
 * cancelled (the SDK has no way to); a late answer is ignored.
 */
export function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new RelayFleetError(DEADLINE_CODE, `${what} got no answer within ${ms} ms`)),
      ms,
    );
  });
  p.catch(() => {}); // a late failure after the deadline must not become an unhandled rejection
  return Promise.race([p, expired]).finally(() => clearTimeout(timer));
}

/** True when `err` is a call's missed deadline (not an answer that was an error). */
export function isDeadlineError(err: unknown): boolean {
  return hasErrorCode(err, DEADLINE_CODE);
}
