/**
 * Raw ws@8 clients for the relay emulator's tests: listener control channels, senders and
 * rendezvous sockets built by hand from the wire protocol (docs relay-protocol.md §1), with no
 * dependency on lib/hyco's listener or sender. Every socket is closed when the test ends.
 */
import type { IncomingMessage } from "node:http";
import WebSocket from "ws";
import { audienceFor, createSasToken } from "../../lib/hyco/sas.ts";
import { type RelayEmulator, startRelayEmulator } from "../../sim/relay-emulator/index.ts";
import type { CleanupContext } from "./index.ts";

export interface Credentials {
  keyName: string;
  key: string;
}

/** Root (Manage) credentials of the emulator. */
export function rootCredentials(emu: RelayEmulator): Credentials {
  return { keyName: emu.manageKeyName, key: emu.manageKey };
}

/** A SAS token for `hc` (or the namespace when empty) in the .NET audience form. */
export function tokenFor(emu: RelayEmulator, hc: string, cred: Credentials, ttlSeconds = 3600): string {
  return createSasToken(audienceFor(emu.endpoint, hc), cred.keyName, cred.key, { ttlSeconds });
}

export function hcUrl(emu: RelayEmulator, hc: string, query: string): string {
  return `${emu.url}/$hc/${hc}?${query}`;
}

/** A failed WebSocket handshake: the HTTP status and reason phrase the emulator answered. */
export class UpgradeRefused extends Error {
  constructor(
    readonly status: number,
    readonly statusMessage: string,
  ) {
    super(`upgrade refused: ${status} ${statusMessage}`);
  }
}

/** The 101 response each client got (headers the listener set travel to the sender this way). */
export const upgradeResponses = new WeakMap<WebSocket, IncomingMessage>();

/** Opens a ws@8 client; resolves when open, rejects with {@link UpgradeRefused} on a non-101 answer. */
export function openWs(
  t: CleanupContext,
  emu: RelayEmulator,
  url: string,
  options: { headers?: Record<string, string>; protocols?: string[] } = {},
): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options.protocols ?? [], {
      headers: options.headers ?? {},
      perMessageDeflate: false,
      maxPayload: 0,
      ...(emu.ca ? { ca: emu.ca } : {}),
    });
    t.after(() => ws.terminate());
    ws.once("unexpected-response", (_req, res: IncomingMessage) => {
      res.resume();
      reject(new UpgradeRefused(res.statusCode ?? 0, res.statusMessage ?? ""));
      ws.terminate();
    });
    ws.once("upgrade", (res: IncomingMessage) => upgradeResponses.set(ws, res));
    ws.once("open", () => resolve(ws));
    ws.on("error", (err) => reject(err));
  });
}

/** Resolves with the status of a refused upgrade; fails the test if the upgrade succeeds. */
export async function refusedStatus(
  t: CleanupContext,
  emu: RelayEmulator,
  url: string,
  options: { headers?: Record<string, string> } = {},
): Promise<UpgradeRefused> {
  try {
    const ws = await openWs(t, emu, url, options);
    ws.terminate();
  } catch (err) {
    if (err instanceof UpgradeRefused) return err;
    throw err;
  }
  throw new Error(`expected ${url} to be refused, but it opened`);
}

export interface AcceptCommand {
  address: string;
  id: string;
  connectHeaders: Record<string, string>;
  remoteEndpoint?: { address: string; port: number };
}

/** A raw listener: its control channel and a queue of received accept commands. */
export interface RawListener {
  ws: WebSocket;
  /** Every text frame received (parsed when JSON). */
  frames: unknown[];
  nextAccept(timeoutMs?: number): Promise<AcceptCommand>;
  closed: Promise<{ code: number; reason: string }>;
}

export async function openListener(
  t: CleanupContext,
  emu: RelayEmulator,
  hc: string,
  cred: Credentials = rootCredentials(emu),
  opts: { ttlSeconds?: number; via?: "header" | "query" } = {},
): Promise<RawListener> {
  const token = tokenFor(emu, hc, cred, opts.ttlSeconds ?? 3600);
  const url =
    opts.via === "query"
      ? hcUrl(emu, hc, `sb-hc-action=listen&sb-hc-token=${encodeURIComponent(token)}`)
      : hcUrl(emu, hc, "sb-hc-action=listen");
  const ws = await openWs(
    t,
    emu,
    url,
    opts.via === "query" ? {} : { headers: { ServiceBusAuthorization: token } },
  );
  const frames: unknown[] = [];
  const accepts: AcceptCommand[] = [];
  const waiters: Array<(a: AcceptCommand) => void> = [];
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  ws.on("message", (data: Buffer, isBinary: boolean) => {
    if (isBinary) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(data.toString());
    } catch {
      parsed = data.toString();
    }
    frames.push(parsed);
    const accept = (parsed as { accept?: AcceptCommand }).accept;
    if (accept) {
      const w = waiters.shift();
      if (w) w(accept);
      else accepts.push(accept);
    }
  });
  return {
    ws,
    frames,
    closed,
    nextAccept(timeoutMs = 10_000) {
      const queued = accepts.shift();
      if (queued) return Promise.resolve(queued);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("no accept command arrived")), timeoutMs);
        waiters.push((a) => {
          clearTimeout(timer);
          resolve(a);
        });
      });
    },
  };
}

/** Starts a sender upgrade (held by the relay until accept/reject); resolves/rejects like {@link openWs}. */
export function startSender(
  t: CleanupContext,
  emu: RelayEmulator,
  hc: string,
  cred: Credentials | null = rootCredentials(emu),
  extra: { headers?: Record<string, string>; query?: string; protocols?: string[] } = {},
): Promise<WebSocket> {
  const headers: Record<string, string> = { ...(extra.headers ?? {}) };
  if (cred) headers.ServiceBusAuthorization = tokenFor(emu, hc, cred);
  return openWs(t, emu, hcUrl(emu, hc, `sb-hc-action=connect${extra.query ? `&${extra.query}` : ""}`), {
    headers,
    ...(extra.protocols ? { protocols: extra.protocols } : {}),
  });
}

/** Sender + listener accept: resolves with both ends of one relayed connection. */
export async function relayedPair(
  t: CleanupContext,
  emu: RelayEmulator,
  listener: RawListener,
  hc: string,
): Promise<{ sender: WebSocket; rendezvous: WebSocket; accept: AcceptCommand }> {
  const senderP = startSender(t, emu, hc);
  senderP.catch(() => undefined);
  const accept = await listener.nextAccept();
  const rendezvous = await openWs(t, emu, accept.address);
  const sender = await senderP;
  return { sender, rendezvous, accept };
}

/** Resolves with the close code and reason a socket ends with. */
export function closeOf(ws: WebSocket): Promise<{ code: number; reason: string }> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve({ code: 1006, reason: "" });
  return new Promise((resolve) =>
    ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })),
  );
}

/** Next message of a socket. */
export function nextMessage(ws: WebSocket, timeoutMs = 10_000): Promise<{ data: Buffer; isBinary: boolean }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no message arrived")), timeoutMs);
    ws.once("message", (data: Buffer, isBinary: boolean) => {
      clearTimeout(timer);
      resolve({ data, isBinary });
    });
  });
}

/** Where and as whom a listener or a sender reaches one hybrid connection. */
export interface HybridConnectionAccess {
  endpoint: string;
  hybridConnection: string;
  keyName: string;
  key: string;
}

/**
 * A relay emulator (closed after the test) with hybrid connection `hc` and its two rules:
 * `listen` (Listen) and `send` (Send), as the access a listener and a sender take.
 */
export async function relayWithHybridConnection(
  t: CleanupContext,
  hc: string,
): Promise<{ relay: RelayEmulator; listen: HybridConnectionAccess; send: HybridConnectionAccess }> {
  const relay = await startRelayEmulator();
  t.after(() => relay.close());
  relay.admin.putHybridConnection(hc);
  const access = (keyName: string, right: "Listen" | "Send") => ({
    endpoint: relay.url,
    hybridConnection: hc,
    keyName,
    key: relay.admin.putAuthorizationRule(hc, keyName, [right]).rule.primaryKey,
  });
  return { relay, listen: access("listen", "Listen"), send: access("send", "Send") };
}
