/**
 * The gateway's side of the data path, entirely on the shared Hybrid Connections client
 * (`lib/hyco`): `openLogicalPort` (sender connection with the site's Send-only rule + azbridge
 * preamble, bytes the site sends behind its reply held for the pump) and `startPump`. No relay
 * protocol is implemented here; the gateway never holds a Listen or Manage key. It signs in to
 * the relay with its managed identity's Entra ID token (Azure Relay Sender role), or, with
 * `GATEWAY_RELAY_AUTH=sas`, with the site's Send rule from the ledger.
 */
import type { WebSocket } from "ws";
import { hasErrorCode, RelayFleetError } from "../../../lib/errors.ts";
import type { SenderOptions } from "../../../lib/hyco/sender.ts";
import { type StandbyPools, startTunnelPump } from "../../../lib/hyco/standby.ts";
import { openLogicalPort } from "../../../lib/hyco/tunnel.ts";
import type { OpenTunnel, PumpTunnel } from "./connection.ts";

/** How the gateway authenticates to Azure Relay. */
export type RelayAuth = { kind: "entra"; token: () => string | undefined } | { kind: "sas" };

export interface RelayTunnelOptions {
  /** Default: SAS with the ledger's Send rule (what tests built before Entra ID use). */
  auth?: RelayAuth;
  /** Extra CA (PEM) for the relay's TLS, e.g. the local emulator's. */
  ca?: string | Buffer;
  /** Relay connect + the site's preamble answer, together (default 15 s). */
  timeoutMs?: number;
  /** Standby connections per site (lib/hyco/standby.ts): a warm site's tunnels skip the rendezvous. */
  standby?: StandbyPools;
  /** Called when the relay refuses the gateway's credentials (401/403): metrics and readyz. */
  onAuthRefused?: (status: 401 | 403, siteId: string) => void;
}

/**
 * Opens tunnels to a route's site. The whole setup is bounded by `timeoutMs`: lib/hyco bounds
 * the connect and the reply separately, so the gateway races the pair against one deadline and
 * closes a tunnel that is answered after it (or after its client left).
 */
export function relayTunnelOpener(options: RelayTunnelOptions = {}): OpenTunnel {
  const timeoutMs = options.timeoutMs ?? 15_000;
  const auth = options.auth ?? { kind: "sas" };
  return (route, signal) => {
    const site = route.site;
    const credentials: Partial<SenderOptions> =
      auth.kind === "entra"
        ? { bearerToken: auth.token }
        : site.sendKeyName && site.sendKey
          ? { keyName: site.sendKeyName, key: site.sendKey }
          : {};
    if (auth.kind === "sas" && credentials.key === undefined) {
      return Promise.reject(
        new RelayFleetError(
          "RF_ERR_GATEWAY_NO_SEND_KEY",
          `site ${site.siteId} has no Send rule in the ledger; GATEWAY_RELAY_AUTH=sas needs the rollout's ROLLOUT_RELAY_SEND_AUTH=sas`,
        ),
      );
    }
    const sender: SenderOptions = {
      endpoint: site.relayEndpoint,
      hybridConnection: site.hybridConnection,
      ...credentials,
      timeoutMs,
      ...(options.ca !== undefined ? { ca: options.ca } : {}),
    };
    // The mapping's logical port: its azbridge port name when it has one, else its name.
    const opening = openLogicalPort(sender, route.logicalPort ?? route.portName, {
      replyTimeoutMs: timeoutMs,
      ...(options.standby ? { standby: options.standby.for(sender) } : {}),
    });
    return new Promise<WebSocket>((resolve, reject) => {
      let settled = false;
      const finish = (err: unknown, ws?: WebSocket) => {
        if (settled) {
          ws?.terminate();
          return;
        }
        settled = true;
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        if (ws) resolve(ws);
        else reject(err);
      };
      const onAbort = () =>
        finish(new RelayFleetError("RF_ERR_GATEWAY_CLIENT_GONE", "client left during tunnel setup"));
      const timer = setTimeout(
        () =>
          finish(
            new RelayFleetError(
              "RF_ERR_RELAY_TIMEOUT",
              `relay connect + site answer exceeded ${timeoutMs} ms`,
            ),
          ),
        timeoutMs,
      );
      timer.unref();
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
      // A tunnel answered after the deadline or after the client left is closed at once.
      opening.then(
        (ws) => finish(undefined, ws),
        (err: unknown) => {
          if (hasErrorCode(err, "RF_ERR_RELAY_FORBIDDEN")) options.onAuthRefused?.(403, site.siteId);
          else if (hasErrorCode(err, "RF_ERR_RELAY_UNAUTHORIZED")) options.onAuthRefused?.(401, site.siteId);
          finish(err);
        },
      );
    });
  };
}

/**
 * The shared pump, with the route's idle timeout (it takes the bytes lib/hyco held itself); a
 * tunnel on a standby goes back to its site's pool when its stream ends cleanly.
 */
export const relayPump: PumpTunnel = (ws, socket, options) =>
  startTunnelPump(ws, socket, { idleTimeoutMs: options.idleTimeoutMs });
