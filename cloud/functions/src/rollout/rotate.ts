/**
 * Rotates a site's SAS keys by moving it to a new hybrid connection (see rotateSiteKeys), so that
 * a rotation also ends every listener registered with an old key.
 */
import { RelayFleetError } from "../../../../lib/errors.ts";
import { keyFingerprint } from "../../../../lib/hyco/sas.ts";
import type { RelayAdmin } from "../relay-admin/types.ts";
import {
  hybridConnectionOf,
  listenRule,
  parseHybridConnection,
  type RolloutDeps,
  sendRule,
} from "./context.ts";
import { MODULE_ID } from "./desired-twin.ts";
import type { JsonObject, ModuleTwinView } from "./hub.ts";
import { relayFor } from "./namespaces.ts";
import { devicesOfRow } from "./offboard.ts";

export interface RotateResult {
  siteId: string;
  listenKeyFingerprint: string;
  /**
   * Each device of the site: `moved` when its module reported the new key before the old hybrid
   * connection was deleted, `offline` when its module was not connected to IoT Hub (it reads the
   * new key from its twin when it reconnects).
   */
  devices: Array<{ deviceId: string; state: "moved" | "offline" }>;
  /** Absent with Entra ID (no Send key exists). */
  sendKeyFingerprint?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function notFound(siteId: string): RelayFleetError {
  return new RelayFleetError("RF_ERR_ROLLOUT_SITE_NOT_FOUND", `Site ${siteId} does not exist.`);
}

/** Waits (bounded) until the module reports the fingerprint of `key`. Reads one module twin per poll; no query. */
async function waitForModuleKey(
  deps: RolloutDeps,
  siteId: string,
  deviceId: string,
  key: string,
): Promise<void> {
  const want = keyFingerprint(key);
  const timeoutMs = deps.rotateTimeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  let interval = deps.rotatePollMs ?? 500;
  for (;;) {
    const twin = await deps.hub.getModuleTwin(deviceId, MODULE_ID);
    const relay = (twin?.reported.relay ?? {}) as JsonObject;
    if (relay.keyFingerprint === want) return;
    if (Date.now() >= deadline) {
      throw new RelayFleetError(
        "RF_ERR_ROLLOUT_ROTATE_TIMEOUT",
        `Site ${siteId}'s module on device ${deviceId} did not report the new Listen key within ${Math.round(timeoutMs / 1000)} s; the old key stays valid, so nothing is disconnected. Retry when the module is online.`,
      );
    }
    await sleep(Math.min(interval, Math.max(0, deadline - Date.now())));
    interval = Math.min(interval * 1.5, 5_000);
  }
}

/**
 * Moves a site to a new hybrid connection with new Listen and Send keys, then deletes the old one.
 *
 * Azure documents that a regenerated key invalidates tokens for new connections only: a listener
 * already registered stays until its token expires, and whoever holds a key can sign a token
 * valid for as long as they like. Deleting the hybrid connection is what closes its listeners, so
 * a rotation that must evict an old key's holder replaces the entity (ADR 0009):
 *   1. a new hybrid connection `site-<id>.k<n+1>` with its own Listen and Send rules;
 *   2. the module twin gets its name and Listen key; the rollout waits until the module reports
 *      the new key (it then listens there);
 *   3. the ledger row gets the new name and Send key; gateways pick it up on reload;
 *   4. after the Send grace (every gateway has re-read the ledger), the old hybrid connection is
 *      deleted: its listeners, the module's old one and any holder of an old key, are closed.
 * Every device of a site gets the new name and key; the rollout waits for each whose module is
 * connected (an offline device picks them up from its twin when it is back).
 * If a module never reports, the new hybrid connection is deleted again and the old one stays.
 * With Entra ID for gateways (`relaySendAuth: "entra"`, ADR 0010) there is no Send rule: step 1
 * creates the Listen rule only and step 3 writes no key. Gateways then need Azure Relay Sender at
 * the namespace: an assignment scoped to the old hybrid connection does not cover the new one.
 */
export async function rotateSiteKeys(
  deps: RolloutDeps,
  siteId: string,
  options: { to?: RelayAdmin } = {},
): Promise<RotateResult> {
  const row = await deps.ledger.getSite(siteId);
  if (!row) throw notFound(siteId);
  // The site's namespace, and where it goes: the same one (a rotation) or another (a move).
  const from = relayFor(deps, row.relayEndpoint);
  const to = options.to ?? from;
  const moving = to.endpoint !== from.endpoint;
  const deviceIds = devicesOfRow(row);
  const twins = new Map<string, ModuleTwinView>();
  for (const deviceId of deviceIds) {
    const twin = await deps.hub.getModuleTwin(deviceId, MODULE_ID);
    if (twin) twins.set(deviceId, twin);
  }
  const oldHc = row.hybridConnection;
  const missing = deviceIds.filter((d) => !twins.has(d));
  if (missing.length > 0 || !(await from.getRule(oldHc, listenRule(deps)))) {
    throw new RelayFleetError(
      "RF_ERR_ROLLOUT_INCOMPLETE",
      `Site ${siteId} is not fully onboarded (${missing.length > 0 ? `module twin missing on ${missing.join(", ")}` : "Listen rule missing"}); re-apply it before rotating keys.`,
    );
  }
  // Every device whose module is connected must move before the old hybrid connection goes; one
  // that is offline (a redundant site's spare being serviced) must not block the others: it
  // reads the new name and key from its twin when it reconnects. With none connected, the
  // rotation still needs one device to move, so it waits for all of them.
  const online = deviceIds.filter((d) => twins.get(d)?.connectionState === "Connected");
  const waitFor = online.length > 0 ? online : deviceIds;
  const generation = (parseHybridConnection(oldHc)?.generation ?? 0) + 1;
  const newHc = hybridConnectionOf(siteId, generation);

  await to.ensureHybridConnection(newHc);
  const listen = await to.ensureRule(newHc, listenRule(deps), ["Listen"]);
  // With Entra ID there is no Send rule: the Listen key is the only key there is to rotate.
  const send =
    deps.relaySendAuth === "entra" ? undefined : await to.ensureRule(newHc, sendRule(deps), ["Send"]);
  try {
    for (const deviceId of deviceIds) {
      await deps.hub.patchModuleDesired(deviceId, MODULE_ID, {
        relay: {
          hybridConnection: newHc,
          sasKey: listen.primaryKey,
          ...(moving ? { endpoint: to.endpoint } : {}),
        },
      });
    }
    await Promise.all(waitFor.map((d) => waitForModuleKey(deps, siteId, d, listen.primaryKey)));
  } catch (err) {
    // Nothing half-done stays: the modules go back to the old hybrid connection, the new one goes.
    for (const [deviceId, twin] of twins) {
      await deps.hub
        .patchModuleDesired(deviceId, MODULE_ID, {
          relay: {
            hybridConnection: oldHc,
            sasKey: ((twin.desired.relay ?? {}) as JsonObject).sasKey ?? null,
            ...(moving ? { endpoint: from.endpoint } : {}),
          },
        })
        .catch(() => undefined);
    }
    await to.deleteHybridConnection(newHc).catch(() => undefined);
    throw err;
  }

  await deps.ledger.putSite({
    ...row,
    hybridConnection: newHc,
    relayEndpoint: to.endpoint,
    ...(send ? { sendKeyName: send.name, sendKey: send.primaryKey } : {}),
  });
  const grace = deps.sendKeyGraceMs ?? 10_000;
  if (grace > 0) await sleep(grace);
  await from.deleteHybridConnection(oldHc);

  const devices = deviceIds.map((deviceId) => ({
    deviceId,
    state: waitFor.includes(deviceId) ? ("moved" as const) : ("offline" as const),
  }));
  deps.logger?.info(
    {
      siteId,
      hybridConnection: newHc,
      replaced: oldHc,
      devices,
      ...(moving ? { from: from.endpoint, to: to.endpoint } : {}),
    },
    moving ? "site moved to another relay namespace" : "site keys rotated",
  );
  return {
    siteId,
    listenKeyFingerprint: keyFingerprint(listen.primaryKey),
    ...(send ? { sendKeyFingerprint: keyFingerprint(send.primaryKey) } : {}),
    devices,
  };
}
