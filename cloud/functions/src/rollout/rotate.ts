/**
 * Rotates a site's SAS keys without dropping established connections. Both keys of a rule are
 * valid at once, so the unused slot is regenerated, the new key is handed out (module twin /
 * ledger), and only when the holder uses it is the old slot regenerated (revoking the old key).
 * Established relay connections are not re-authorized, so they keep flowing throughout.
 */
import { RelayFleetError } from "../../../../lib/errors.ts";
import { keyFingerprint } from "../../../../lib/hyco/sas.ts";
import { hybridConnectionOf, listenRule, type RolloutDeps, sendRule } from "./context.ts";
import { MODULE_ID } from "./desired-twin.ts";
import type { JsonObject } from "./hub.ts";

export interface RotateResult {
  siteId: string;
  listenKeyFingerprint: string;
  sendKeyFingerprint: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function notFound(siteId: string): RelayFleetError {
  return new RelayFleetError("RF_ERR_ROLLOUT_SITE_NOT_FOUND", `Site ${siteId} does not exist.`, {
    status: 404,
  });
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
        `Site ${siteId}'s module did not report the new Listen key within ${Math.round(timeoutMs / 1000)} s; the old key stays valid, so nothing is disconnected. Retry when the module is online.`,
        { status: 504 },
      );
    }
    await sleep(Math.min(interval, Math.max(0, deadline - Date.now())));
    interval = Math.min(interval * 1.5, 5_000);
  }
}

/** Rotates the Listen key (via the module twin) and then the Send key (via the ledger). */
export async function rotateSiteKeys(deps: RolloutDeps, siteId: string): Promise<RotateResult> {
  const row = await deps.ledger.getSite(siteId);
  if (!row) throw notFound(siteId);
  const hc = hybridConnectionOf(siteId);

  // Listen rule: the slot the twin does not use gets a new key.
  const listen = await deps.relay.getRule(hc, listenRule(deps));
  const twin = await deps.hub.getModuleTwin(row.deviceId, MODULE_ID);
  if (!listen || !twin) {
    throw new RelayFleetError(
      "RF_ERR_ROLLOUT_INCOMPLETE",
      `Site ${siteId} is not fully onboarded (rule or module twin missing); re-apply it before rotating keys.`,
      { status: 409 },
    );
  }
  const inUse = ((twin.desired.relay ?? {}) as JsonObject).sasKey;
  const listenUsed = inUse === listen.secondaryKey ? "secondary" : "primary";
  const listenFresh = listenUsed === "primary" ? "secondary" : "primary";
  const regenerated = await deps.relay.regenerateKey(hc, listen.name, listenFresh);
  const newListenKey = listenFresh === "primary" ? regenerated.primaryKey : regenerated.secondaryKey;
  await deps.hub.patchModuleDesired(row.deviceId, MODULE_ID, { relay: { sasKey: newListenKey } });
  await waitForModuleKey(deps, siteId, row.deviceId, newListenKey);
  await deps.relay.regenerateKey(hc, listen.name, listenUsed);

  // Send rule: gateways pick the new key up on their next ledger reload.
  const send = await deps.relay.getRule(hc, sendRule(deps));
  if (!send) throw notFound(siteId);
  const sendUsed = row.sendKey === send.secondaryKey ? "secondary" : "primary";
  const sendFresh = sendUsed === "primary" ? "secondary" : "primary";
  const sendRegenerated = await deps.relay.regenerateKey(hc, send.name, sendFresh);
  const newSendKey = sendFresh === "primary" ? sendRegenerated.primaryKey : sendRegenerated.secondaryKey;
  await deps.ledger.putSite({ ...row, sendKey: newSendKey });
  const grace = deps.sendKeyGraceMs ?? 10_000;
  if (grace > 0) await sleep(grace);
  await deps.relay.regenerateKey(hc, send.name, sendUsed);

  deps.logger?.info({ siteId }, "site keys rotated");
  return {
    siteId,
    listenKeyFingerprint: keyFingerprint(newListenKey),
    sendKeyFingerprint: keyFingerprint(newSendKey),
  };
}
