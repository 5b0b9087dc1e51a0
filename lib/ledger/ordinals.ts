/**
 * Fleet-wide ordinals: a counter row in the ledger's `counter` partition that hands out blocks of
 * consecutive integers, each once, to every rollout instance and worker (ADR 0031: the k-th
 * relay module's IoT Hub reconnect phase is `evenPhase(k)`). A take reads the row and replaces
 * it with its ETag (Table storage's optimistic concurrency), so two writers never get one block:
 * the loser's replace fails with 412 and it reads again. Callers take a block per batch (the
 * onboarding queue: one for up to 100 sites' new devices), so the row is touched twice per batch
 * and is never a hot row.
 */
import type { TableClient } from "@azure/data-tables";
import { z } from "zod";
import { sleep, spreadAbove } from "../backoff.ts";
import { RelayFleetError } from "../errors.ts";
import { COUNTER_PARTITION } from "./schema.ts";
import { statusOf } from "./table.ts";

/** The counter of relay modules' reconnect phase ordinals. */
export const HUB_PHASE_COUNTER = "hub-phase";

/** Largest block one take may ask for (a bulk call's devices are at most 100; headroom above). */
export const MAX_ORDINAL_BLOCK = 10_000;

/** Attempts against other writers before a take gives up (each loses only to a finished take). */
const MAX_TAKE_ATTEMPTS = 20;

const counterEntity = z.object({
  next: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  etag: z.string().min(1),
});

export interface OrdinalCounters {
  /**
   * Takes `count` consecutive ordinals of counter `name`, never handed out before: answers the
   * first (the block is `first … first + count − 1`). A `count` of 0 takes nothing (no storage
   * call) and answers the next ordinal as last read, or 0.
   */
  takeOrdinals(name: string, count: number): Promise<number>;
}

export function createOrdinalCounters(client: TableClient): OrdinalCounters {
  async function read(name: string): Promise<z.infer<typeof counterEntity> | undefined> {
    let entity: Record<string, unknown>;
    try {
      entity = (await client.getEntity(COUNTER_PARTITION, name)) as Record<string, unknown>;
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw err;
    }
    const parsed = counterEntity.safeParse(entity);
    if (!parsed.success)
      throw new RelayFleetError(
        "RF_ERR_LEDGER_BAD_COUNTER",
        `The ledger's counter row ${COUNTER_PARTITION}/${name} is unreadable (${parsed.error.issues[0]?.message ?? "bad row"}); nothing was taken.`,
      );
    return parsed.data;
  }

  return {
    async takeOrdinals(name, count) {
      if (!Number.isSafeInteger(count) || count < 0 || count > MAX_ORDINAL_BLOCK)
        throw new RelayFleetError(
          "RF_ERR_LEDGER_BAD_COUNTER",
          `An ordinal block is 0 … ${MAX_ORDINAL_BLOCK} ordinals, not ${count}; nothing was taken.`,
        );
      if (count === 0) return (await read(name))?.next ?? 0;
      for (let attempt = 0; attempt < MAX_TAKE_ATTEMPTS; attempt++) {
        if (attempt > 0) await sleep(spreadAbove(5 * attempt));
        const row = await read(name);
        try {
          if (row === undefined) {
            // The first take of the ledger's life: inserted, or 409 when another take was first.
            await client.createEntity({ partitionKey: COUNTER_PARTITION, rowKey: name, next: count });
            return 0;
          }
          const next = row.next + count;
          if (!Number.isSafeInteger(next))
            throw new RelayFleetError("RF_ERR_LEDGER_BAD_COUNTER", `The counter ${name} is exhausted.`);
          await client.updateEntity({ partitionKey: COUNTER_PARTITION, rowKey: name, next }, "Replace", {
            etag: row.etag,
          });
          return row.next;
        } catch (err) {
          // Another writer took a block in between: read again.
          if (statusOf(err) === 409 || statusOf(err) === 412) continue;
          throw err;
        }
      }
      throw new RelayFleetError(
        "RF_ERR_LEDGER_CONTENDED",
        `The counter ${name} changed under ${MAX_TAKE_ATTEMPTS} attempts in a row; nothing was taken, try again.`,
      );
    },
  };
}
