/**
 * Answers on a raw upgrade socket. Failed WebSocket handshakes get a real HTTP status line whose
 * reason phrase is the service's description: clients (.NET, the project's sender) surface it, and
 * a rejected connection carries the listener's description to the sender this way (§1.3).
 */
import { STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";

/** Makes free text safe for a reason phrase: printable ASCII, one line, bounded. */
export function reasonPhrase(text: string | undefined, status: number): string {
  const clean = (text ?? "")
    .replace(/[^\x20-\x7e]/g, " ")
    .trim()
    .slice(0, 512);
  return clean || STATUS_CODES[status] || "Error";
}

/** Writes a complete HTTP error response on an un-upgraded socket and ends it. */
export function writeUpgradeError(socket: Duplex, status: number, description?: string): void {
  if (socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  const phrase = reasonPhrase(description, status);
  const body = `${phrase}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${phrase}\r\n` +
      "Connection: close\r\n" +
      "Content-Type: text/plain; charset=utf-8\r\n" +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      "\r\n" +
      body,
  );
  // A peer that never reads must not keep the socket around.
  setTimeout(() => socket.destroy(), 1_000).unref();
}

/** `::ffff:127.0.0.1` → `127.0.0.1`, as the service reports IPv4 senders. */
export function plainAddress(address: string | undefined): string {
  if (!address) return "";
  return address.startsWith("::ffff:") ? address.slice(7) : address;
}
