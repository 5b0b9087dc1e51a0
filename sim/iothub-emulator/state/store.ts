/**
 * The hub's whole state (identities, twins, configurations, policy keys) in memory, optionally
 * persisted to one JSON file so a simulation survives a restart with the same keys. Writes are
 * coalesced and atomic (temp file + rename): a crash never leaves half a file.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { rename, writeFile } from "node:fs/promises";
import { RelayFleetError } from "../../../lib/errors.ts";
import { generateKey } from "../auth.ts";
import type { DeviceRecord } from "./identities.ts";
import type { JsonObject } from "./json.ts";

export interface ConfigurationRecord {
  id: string;
  schemaVersion: string;
  labels: JsonObject;
  content: JsonObject;
  targetCondition: string;
  priority: number;
  metrics: JsonObject;
  createdTimeUtc: string;
  lastUpdatedTimeUtc: string;
  etagCounter: number;
}

export interface PolicyKeys {
  primaryKey: string;
  secondaryKey: string;
}

interface PersistedState {
  format: 1;
  policies: Record<string, PolicyKeys>;
  devices: DeviceRecord[];
  configurations: ConfigurationRecord[];
  /** `clean=false` MQTT sessions: client id → topic filter → QoS (absent in older files). */
  mqttSessions?: Record<string, Record<string, 0 | 1>>;
}

export class HubStore {
  readonly devices = new Map<string, DeviceRecord>();
  readonly configurations = new Map<string, ConfigurationRecord>();
  readonly policies: Record<string, PolicyKeys> = {};
  /** Subscriptions of persistent MQTT sessions, shared with the MQTT session registry. */
  readonly mqttSessions = new Map<string, Map<string, 0 | 1>>();
  private readonly file: string | undefined;
  private pending: Promise<void> | undefined;
  private dirtyAgain = false;

  constructor(file?: string, ownerKey?: string) {
    this.file = file;
    if (file && existsSync(file)) this.load(file);
    this.policies.iothubowner ??= { primaryKey: generateKey(), secondaryKey: generateKey() };
    if (ownerKey) this.policies.iothubowner.primaryKey = ownerKey;
    this.policies.service ??= { primaryKey: generateKey(), secondaryKey: generateKey() };
    this.policies.registryReadWrite ??= { primaryKey: generateKey(), secondaryKey: generateKey() };
    if (file) this.flushSync();
  }

  private load(file: string): void {
    let state: PersistedState;
    try {
      state = JSON.parse(readFileSync(file, "utf8")) as PersistedState;
    } catch (err) {
      throw new RelayFleetError("RF_ERR_IOTHUB_STATE_FILE", `cannot read state file ${file}`, { cause: err });
    }
    if (state.format !== 1)
      throw new RelayFleetError("RF_ERR_IOTHUB_STATE_FILE", `state file ${file} has an unknown format`);
    Object.assign(this.policies, state.policies);
    for (const d of state.devices) {
      // Connections do not survive a restart.
      d.connectionState = "Disconnected";
      for (const m of Object.values(d.modules)) m.connectionState = "Disconnected";
      this.devices.set(d.deviceId, d);
    }
    for (const c of state.configurations) this.configurations.set(c.id, c);
    for (const [clientId, subs] of Object.entries(state.mqttSessions ?? {})) {
      this.mqttSessions.set(clientId, new Map(Object.entries(subs)));
    }
  }

  private snapshot(): string {
    const state: PersistedState = {
      format: 1,
      policies: this.policies,
      devices: [...this.devices.values()],
      configurations: [...this.configurations.values()],
      mqttSessions: Object.fromEntries(
        [...this.mqttSessions].map(([clientId, subs]) => [clientId, Object.fromEntries(subs)]),
      ),
    };
    return JSON.stringify(state);
  }

  /** Schedules a write of the state file (no-op when in memory). */
  markDirty(): void {
    if (!this.file) return;
    if (this.pending) {
      this.dirtyAgain = true;
      return;
    }
    const file = this.file;
    const write = async () => {
      do {
        this.dirtyAgain = false;
        await new Promise((r) => setTimeout(r, 20));
        const tmp = `${file}.tmp`;
        await writeFile(tmp, this.snapshot());
        await rename(tmp, file);
      } while (this.dirtyAgain);
    };
    this.pending = write()
      .catch(() => undefined)
      .finally(() => {
        this.pending = undefined;
      });
  }

  /** Writes the state now (used on close). */
  flushSync(): void {
    if (!this.file) return;
    const tmp = `${this.file}.tmp`;
    // Device and policy keys: readable by this user only.
    writeFileSync(tmp, this.snapshot(), { mode: 0o600 });
    renameSync(tmp, this.file);
  }

  async flush(): Promise<void> {
    while (this.pending) await this.pending;
    this.flushSync();
  }
}
