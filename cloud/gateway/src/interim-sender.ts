/**
 * INTERIM: the sender side of a logical port, written to the team contract of
 * `lib/hyco/tunnel.ts` `openLogicalPort` (sender connect with a Send token, azbridge preamble,
 * wait for `[1,0,mode]`) while that module is being written. relay-tunnel.ts switches to
 * lib/hyco once it lands; this file then goes. Same error codes as the contract.
 */
import type { IncomingMessage } from "node:http";
import WebSocket from "ws";
import { RelayFleetError } from "../../../lib/errors.ts";
import { encodePreamble, ReplyParser } from "../../../lib/hyco/preamble.ts";
import { createSasToken } from "../../../lib/hyco/sas.ts";
import { connectUrl, parseEndpoint, tokenAudience } from "../../../lib/hyco/urls.ts";

/**
 * An accepted logical port. Messages the site sends right behind its reply (a server that talks
 * first) can arrive in the same read, before the caller attaches its pump; they are held here
 * until `takeEarly()` hands them over and stops capturing (call it synchronously before pumping).
 */
export interface OpenedPort {
  ws: WebSocket;
  takeEarly(): Buffer[];
}

export interface SenderOptions {
  endpoint: string;
  hybridConnection: string;
  keyName: string;
  key: string;
  ca?: string | Buffer;
  timeoutMs?: number;
}

function statusError(status: number, message: string): RelayFleetError {
  if (status === 404)
    return new RelayFleetError("RF_ERR_RELAY_NO_LISTENER", `relay: ${status} ${message}`, { status });
  if (status === 401)
    return new RelayFleetError("RF_ERR_RELAY_UNAUTHORIZED", `relay: ${status} ${message}`, { status });
  if (status === 403)
    return new RelayFleetError("RF_ERR_RELAY_FORBIDDEN", `relay: ${status} ${message}`, { status });
  if (status === 504 || status === 408)
    return new RelayFleetError("RF_ERR_RELAY_TIMEOUT", `relay: ${status} ${message}`, { status });
  return new RelayFleetError("RF_ERR_RELAY_REJECTED", `relay: ${status} ${message}`, { status });
}

/** Connects as a sender, writes the preamble for `portName` and resolves once the listener says OK. */
export function openLogicalPort(options: SenderOptions, portName: string): Promise<OpenedPort> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const token = createSasToken(
    tokenAudience(options.endpoint, options.hybridConnection),
    options.keyName,
    options.key,
    {
      ttlSeconds: 3600,
    },
  );
  const ep = parseEndpoint(options.endpoint);
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(connectUrl(options.endpoint, options.hybridConnection), {
      headers: { ServiceBusAuthorization: token },
      perMessageDeflate: false,
      maxPayload: 16 * 1024 * 1024,
      handshakeTimeout: timeoutMs,
      ...(ep.scheme === "wss" && options.ca !== undefined ? { ca: options.ca } : {}),
    });
    let settled = false;
    const fail = (err: RelayFleetError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws.terminate();
      reject(err);
    };
    const timer = setTimeout(
      () =>
        fail(new RelayFleetError("RF_ERR_RELAY_TIMEOUT", `no answer from the site within ${timeoutMs} ms`)),
      timeoutMs,
    );
    ws.once("unexpected-response", (_req, res: IncomingMessage) => {
      res.resume();
      fail(statusError(res.statusCode ?? 0, res.statusMessage ?? ""));
    });
    ws.on("error", (err) =>
      fail(new RelayFleetError("RF_ERR_RELAY_UNREACHABLE", `relay: ${err.message}`, { cause: err })),
    );
    ws.once("close", (code, reason) =>
      fail(
        new RelayFleetError(
          "RF_ERR_PREAMBLE_REFUSED",
          `the site closed the tunnel before accepting port '${portName}' (${code} ${String(reason)})`,
        ),
      ),
    );
    const reply = new ReplyParser();
    const onMessage = (data: WebSocket.RawData) => {
      const step = reply.push(Buffer.isBuffer(data) ? data : Buffer.concat(data as Buffer[]));
      if (!step.done) return;
      ws.off("message", onMessage);
      if (!step.value.ok)
        return fail(
          new RelayFleetError(
            "RF_ERR_PREAMBLE_REFUSED",
            `site refused port '${portName}': ${step.value.reason}`,
          ),
        );
      const early: Buffer[] = step.rest.length ? [Buffer.from(step.rest)] : [];
      const capture = (more: WebSocket.RawData) =>
        early.push(Buffer.isBuffer(more) ? more : Buffer.concat(more as Buffer[]));
      ws.on("message", capture);
      settled = true;
      clearTimeout(timer);
      ws.removeAllListeners("close");
      ws.removeAllListeners("error");
      ws.on("error", () => {});
      resolve({
        ws,
        takeEarly: () => {
          ws.off("message", capture);
          return early;
        },
      });
    };
    ws.on("message", onMessage);
    ws.once("open", () => ws.send(encodePreamble(portName), { binary: true }));
  });
}
