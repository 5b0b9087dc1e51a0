/**
 * The gateway's side of the data path, entirely on the shared Hybrid Connections client
 * (`lib/hyco`): `openLogicalPort` (sender connection with the site's Send-only rule + azbridge
 * preamble) returns a `Tunnel` that holds the bytes the site sends behind its reply and pumps
 * them with the client's socket (`tunnel.pump`, reusable on a standby). No relay
 * protocol is implemented here; the gateway never holds a Listen or Manage key. It signs in to
 * the relay with its managed identity's Entra ID token (Azure Relay Sender role), or, with
 * `GATEWAY_RELAY_AUTH=sas`, with the site's Send rule from the ledger.
 */
import { hasErrorCode, RelayFleetError } from "../../../lib/errors.ts";
import type { SenderOptions } from "../../../lib/hyco/sender.ts";
import type { StandbyPools } from "../../../lib/hyco/standby-pools.ts";
import { openLogicalPort } from "../../../lib/hyco/tunnel.ts";
import type { OpenTunnel } from "./connection.ts";

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
 * Opens tunnels to a route's site. The whole setup (relay connect + the site's answer) has one
 * deadline, `timeoutMs`, and ends early when the client leaves (`signal`); lib/hyco closes a
 * connection that is answered too late.
 */
export function relayTunnelOpener(options: RelayTunnelOptions = {}): OpenTunnel {
  const timeoutMs = options.timeoutMs ?? 15_000;
  const auth = options.auth ?? { kind: "sas" };
  return async (route, signal) => {
    const site = route.site;
    const credentials: Partial<SenderOptions> =
      auth.kind === "entra"
        ? { bearerToken: auth.token }
        : site.sendKeyName && site.sendKey
          ? { keyName: site.sendKeyName, key: site.sendKey }
          : {};
    if (auth.kind === "sas" && credentials.key === undefined) {
      throw new RelayFleetError(
        "RF_ERR_GATEWAY_NO_SEND_KEY",
        `site ${site.siteId} has no Send rule in the ledger; GATEWAY_RELAY_AUTH=sas needs the rollout's ROLLOUT_RELAY_SEND_AUTH=sas`,
      );
    }
    const sender: SenderOptions = {
      endpoint: site.relayEndpoint,
      hybridConnection: site.hybridConnection,
      ...credentials,
      ...(options.ca !== undefined ? { ca: options.ca } : {}),
    };
    try {
      // The mapping's logical port: its azbridge port name when it has one, else its name.
      return await openLogicalPort(sender, route.logicalPort ?? route.portName, {
        timeoutMs,
        signal,
        ...(options.standby ? { standby: options.standby.for(sender) } : {}),
      });
    } catch (err) {
      if (hasErrorCode(err, "RF_ERR_RELAY_FORBIDDEN")) options.onAuthRefused?.(403, site.siteId);
      else if (hasErrorCode(err, "RF_ERR_RELAY_UNAUTHORIZED")) options.onAuthRefused?.(401, site.siteId);
      throw err;
    }
  };
}
