/**
 * Keeps this gateway's row in the gateway status table (lib/ledger/gateway-status.ts) up to
 * date, so that `relay-fleet status` shows what the gateway cannot do (a public port it cannot
 * bind) instead of everything looking up: rewritten soon after each change and as a heartbeat,
 * deleted on a clean stop. A failing write is logged when it starts and when it stops failing,
 * never fatal: the gateway's job is the data path.
 */
import type { TableClient } from "@azure/data-tables";
import { errorMessage } from "../../../lib/errors.ts";
import {
  GATEWAY_STATUS_PARTITION,
  type GatewayStatus,
  gatewayStatusToEntity,
} from "../../../lib/ledger/gateway-status.ts";
import { statusOf } from "../../../lib/ledger/table.ts";
import type { Logger } from "../../../lib/log.ts";

export interface StatusReporterOptions {
  client: TableClient;
  instanceId: string;
  heartbeatMs: number;
  snapshot: () => Omit<GatewayStatus, "instanceId" | "updatedAt" | "heartbeatMs">;
  log: Logger;
  /** Changes within this window are written as one (default 200 ms). */
  debounceMs?: number;
}

export class StatusReporter {
  private timer: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();
  private tableReady = false;
  private failing: string | undefined;
  private stopped = false;

  constructor(private readonly options: StatusReporterOptions) {}

  start(): void {
    this.heartbeat = setInterval(() => this.changed(), this.options.heartbeatMs);
    this.heartbeat.unref();
    this.changed();
  }

  /** Something in the snapshot may have changed: write soon (coalesced). */
  changed(): void {
    if (this.stopped || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.writing = this.writing.then(() => this.write());
    }, this.options.debounceMs ?? 200);
    this.timer.unref();
  }

  private async write(): Promise<void> {
    if (this.stopped) return;
    const { client, instanceId, heartbeatMs, log } = this.options;
    const row: GatewayStatus = {
      instanceId,
      updatedAt: new Date().toISOString(),
      heartbeatMs,
      ...this.options.snapshot(),
    };
    try {
      if (!this.tableReady) {
        this.tableReady = true;
        // The deployment may have created it (and granted only row access): a refusal here is
        // not an error, the upsert below says whether writing works.
        await client.createTable().catch(() => {});
      }
      await client.upsertEntity(gatewayStatusToEntity(row), "Replace");
      if (this.failing)
        log.info({ event: "status-report-ok", instanceId }, "gateway status row written again");
      this.failing = undefined;
    } catch (err) {
      const message = errorMessage(err);
      if (this.failing !== message)
        log.warn(
          { event: "status-report-failed", instanceId, err: message },
          "cannot write the gateway status row (needs write access to the status table); retrying at the next change or heartbeat",
        );
      this.failing = message;
    }
  }

  /** Stops reporting and removes the row (a stopped gateway is not a broken one). */
  async stop(timeoutMs = 2_000): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.heartbeat);
    const remove = async () => {
      await this.writing;
      try {
        await this.options.client.deleteEntity(GATEWAY_STATUS_PARTITION, this.options.instanceId);
      } catch (err) {
        if (statusOf(err) !== 404)
          this.options.log.warn(
            { event: "status-report-failed", err: errorMessage(err) },
            "cannot remove status row",
          );
      }
    };
    // Storage that is down must not hold the exit up: the row then goes stale, and says so.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([remove(), new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
  }
}
