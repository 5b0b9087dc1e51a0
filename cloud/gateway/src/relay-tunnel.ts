/**
 * The gateway's side of the data path on the shared Hybrid Connections client: a sender
 * connection to the route's site with the site's Send-only rule, plus the azbridge logical-port
 * preamble (`openLogicalPort`). The gateway never holds a Listen or Manage key.
 */
import { RelayFleetError } from "../../../lib/errors.ts";
import { startPump } from "../../../lib/hyco/pump.ts";
import type { OpenTunnel, PumpTunnel } from "./connection.ts";
// INTERIM until lib/hyco/tunnel.ts lands (same contract).
import { openLogicalPort } from "./interim-sender.ts";

export interface RelayTunnelOptions {
  /** Extra CA (PEM) for the relay's TLS, e.g. the local emulator's. */
  ca?: string | Buffer;
  timeoutMs?: number;
}

export function relayTunnelOpener(options: RelayTunnelOptions = {}): OpenTunnel {
  return async (route, signal) => {
    const site = route.site;
    const opened = await openLogicalPort(
      {
        endpoint: site.relayEndpoint,
        hybridConnection: site.hybridConnection,
        keyName: site.sendKeyName,
        key: site.sendKey,
        ...(options.ca !== undefined ? { ca: options.ca } : {}),
        ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
      },
      route.portName,
    );
    if (signal.aborted) {
      opened.ws.terminate();
      throw new RelayFleetError("RF_ERR_GATEWAY_CLIENT_GONE", "client left during tunnel setup");
    }
    return opened;
  };
}

/** The shared pump, with the route's idle timeout. */
export const relayPump: PumpTunnel = (ws, socket, options) =>
  startPump(ws, socket, { idleTimeoutMs: options.idleTimeoutMs, initialData: options.initialData });
