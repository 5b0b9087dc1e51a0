/**
 * The sender side of a Hybrid Connection: one WebSocket per relayed connection
 * (`sb-hc-action=connect`), authorised with a Send token in the `ServiceBusAuthorization` header.
 * The relay holds the upgrade until the listener accepts or rejects, so every outcome arrives as
 * the upgrade's answer and is mapped to a `RelayFleetError` code here.
 */

import type { IncomingMessage } from "node:http";
import { LRUCache } from "lru-cache";
import { type ClientOptions, WebSocket } from "ws";
import { RelayFleetError } from "../errors.ts";
import {
  CONNECT_TIMEOUT_MS,
  MAX_PAYLOAD_BYTES,
  TOKEN_RENEW_FRACTION,
  TOKEN_TTL_SECONDS,
  USER_AGENT,
} from "./constants.ts";
import { createSasToken } from "./sas.ts";
import { connectWithSessionReuse } from "./tls-sessions.ts";
import { connectUrl, tokenAudience } from "./urls.ts";

export interface SenderOptions {
  /** `sb://host[:port]`, `wss://host:port` or `ws://host:port`. */
  endpoint: string;
  hybridConnection: string;
  /** Send rule; omit both for a hybrid connection that does not require client authorization. */
  keyName?: string;
  key?: string;
  /**
   * A Microsoft Entra ID access token for `https://relay.azure.net`, read at every connect (so a
   * refreshed token is used from then on); sent raw in `ServiceBusAuthorization` as the .NET SDK
   * does. Takes the place of `keyName`/`key`. Returning undefined (no valid token) fails the
   * connect with `RF_ERR_RELAY_UNAUTHORIZED` without asking the relay.
   */
  bearerToken?: () => string | undefined;
  /** Extra CA (PEM) trusted for the relay's TLS certificate. */
  ca?: string | Buffer;
  /** Whole connect, including the listener's accept (default 30 s). */
  timeoutMs?: number;
  /** Tracking id (`sb-hc-id`). */
  id?: string;
  /**
   * Send frames with an all-zero mask so ws skips the XOR pass (opt-in, default off). Masking
   * protects transparent proxies from attacker-chosen cleartext (RFC 6455 §10.3), which no proxy
   * sees inside TLS; with bufferutil's native masking the saving is small, so the default keeps the
   * random mask RFC 6455 §5.3 requires.
   */
  unmaskedFrames?: boolean;
  /** Largest message accepted (default 16 MiB). */
  maxPayload?: number;
}

/** Fills ws's mask buffer with zeros: ws then skips masking entirely (sender.js `skipMasking`). */
export function zeroMask(mask: Uint8Array): void {
  mask[0] = 0;
  mask[1] = 0;
  mask[2] = 0;
  mask[3] = 0;
}

// Signing is cheap but not free; a token is reused for half its lifetime (the hot connect path).
// lru-cache bounds the entries (a gateway serves many sites) and ages them out by itself.
const tokenCache = new LRUCache<string, string>({
  max: 1000,
  ttl: TOKEN_TTL_SECONDS * 1000 * TOKEN_RENEW_FRACTION,
});

/** A Send (or Listen) token for the hybrid connection, cached until half its TTL has passed. */
export function cachedToken(
  endpoint: string,
  hybridConnection: string,
  keyName: string,
  key: string,
): string {
  const audience = tokenAudience(endpoint, hybridConnection);
  const cacheKey = `${audience}\n${keyName}\n${key}`;
  const hit = tokenCache.get(cacheKey);
  if (hit !== undefined) return hit;
  const token = createSasToken(audience, keyName, key, { ttlSeconds: TOKEN_TTL_SECONDS });
  tokenCache.set(cacheKey, token);
  return token;
}

/** Maps a relay's HTTP answer to the sender's error codes (exported for the listener and tests). */
export function errorForStatus(status: number, reason: string, what: string): RelayFleetError {
  const detail = `${what}: relay answered ${status}${reason ? ` ${reason}` : ""}`;
  if (status === 404) return new RelayFleetError("RF_ERR_RELAY_NO_LISTENER", detail);
  if (status === 401) return new RelayFleetError("RF_ERR_RELAY_UNAUTHORIZED", detail);
  if (status === 403) return new RelayFleetError("RF_ERR_RELAY_FORBIDDEN", detail);
  if (status === 504 || status === 408)
    return new RelayFleetError("RF_ERR_RELAY_TIMEOUT", detail, { status });
  return new RelayFleetError("RF_ERR_RELAY_REJECTED", detail, { status });
}

/** Maps a socket-level failure (refused, reset, TLS, handshake timeout) to a coded error. */
export function errorForFailure(err: Error, what: string): RelayFleetError {
  if (/handshake has timed out/i.test(err.message))
    return new RelayFleetError("RF_ERR_RELAY_TIMEOUT", `${what}: timed out`, { cause: err });
  const code = (err as { code?: string }).code;
  return new RelayFleetError(
    "RF_ERR_RELAY_UNREACHABLE",
    `${what}: ${code ? `${code} ` : ""}${err.message}`.trim(),
    { cause: err },
  );
}

/** Options shared by every relay WebSocket we open (sender, control channel, rendezvous). */
export function relaySocketOptions(opts: {
  /** The WebSocket URL: a wss URL gets TLS session resumption (lib/hyco/tls-sessions.ts). */
  url: string;
  ca?: string | Buffer;
  timeoutMs: number;
  unmasked: boolean;
  maxPayload: number;
  headers?: Record<string, string>;
}): ClientOptions {
  return {
    perMessageDeflate: false,
    // Relayed bytes are opaque; a peer's text frame need not be UTF-8 (saves a pass over it).
    skipUTF8Validation: true,
    maxPayload: opts.maxPayload,
    handshakeTimeout: opts.timeoutMs,
    headers: { "Relay-User-Agent": USER_AGENT, ...opts.headers },
    ...(opts.ca ? { ca: opts.ca } : {}),
    ...(opts.unmasked ? { generateMask: zeroMask } : {}),
    // ws types createConnection as net.createConnection's overloads; it only ever calls the
    // options form, which is what connectWithSessionReuse takes.
    ...(opts.url.startsWith("wss:")
      ? { createConnection: connectWithSessionReuse as unknown as ClientOptions["createConnection"] }
      : {}),
  };
}

/**
 * Opens a sender connection. Resolves with the open WebSocket once the listener accepted; rejects
 * with `RF_ERR_RELAY_NO_LISTENER` (404), `RF_ERR_RELAY_UNAUTHORIZED` (401),
 * `RF_ERR_RELAY_FORBIDDEN` (403), `RF_ERR_RELAY_REJECTED` (the listener's status, its
 * description in the message), `RF_ERR_RELAY_TIMEOUT` or `RF_ERR_RELAY_UNREACHABLE`. When
 * `signal` aborts first, the connection is dropped and the promise rejects with its reason.
 *
 * On the wire a listener's rejection is only a status and a reason phrase, so a listener that
 * rejects with 401/403/404 is indistinguishable from the relay's own answer and gets that code
 * (the description still carries its text); rejections should use other codes (400, 503 …).
 */
export function connectSender(options: SenderOptions, signal?: AbortSignal): Promise<WebSocket> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  const timeoutMs = options.timeoutMs ?? CONNECT_TIMEOUT_MS;
  const headers: Record<string, string> = {};
  if (options.bearerToken) {
    const token = options.bearerToken();
    if (!token) {
      return Promise.reject(
        new RelayFleetError(
          "RF_ERR_RELAY_UNAUTHORIZED",
          `connect to '${options.hybridConnection}': no valid Entra ID token (its refresh is failing)`,
        ),
      );
    }
    headers.ServiceBusAuthorization = token;
  } else if (options.keyName && options.key) {
    headers.ServiceBusAuthorization = cachedToken(
      options.endpoint,
      options.hybridConnection,
      options.keyName,
      options.key,
    );
  }
  const url = connectUrl(options.endpoint, options.hybridConnection, { id: options.id });
  const what = `connect to '${options.hybridConnection}'`;
  return new Promise<WebSocket>((resolve, reject) => {
    const ws = new WebSocket(
      url,
      relaySocketOptions({
        url,
        ca: options.ca,
        timeoutMs,
        unmasked: options.unmaskedFrames ?? false,
        maxPayload: options.maxPayload ?? MAX_PAYLOAD_BYTES,
        headers,
      }),
    );
    let settled = false;
    const settle = (err?: unknown) => {
      if (settled) return;
      settled = true;
      ws.off("open", onOpen);
      ws.off("unexpected-response", onResponse);
      signal?.removeEventListener("abort", onAbort);
      if (err !== undefined) {
        ws.off("error", onError);
        // Errors after this point are the caller's concern only if it holds the socket; it does not.
        ws.on("error", () => {});
        ws.terminate();
        reject(err);
      } else {
        ws.off("error", onError);
        // Never an unhandled 'error' (it would crash the process); 'close' always follows one.
        ws.on("error", () => {});
        resolve(ws);
      }
    };
    const onOpen = () => settle();
    const onResponse = (_req: unknown, res: IncomingMessage) => {
      res.resume();
      settle(errorForStatus(res.statusCode ?? 0, res.statusMessage ?? "", what));
    };
    const onError = (err: Error) => settle(errorForFailure(err, what));
    // A caller that gives up (its client left) closes the connection in whatever state it is.
    const onAbort = () => settle(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    ws.once("open", onOpen);
    ws.once("unexpected-response", onResponse);
    ws.on("error", onError);
  });
}
