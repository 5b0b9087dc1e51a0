/**
 * Finds the Host of a plain HTTP/1.x request head, so a shared port can route by name. Bounded
 * and incremental like the SNI reader; it only reads, and the caller replays the bytes.
 */
import { RelayFleetError } from "../../../lib/errors.ts";
import { normaliseHostname } from "./sni.ts";

/** Request heads larger than this are refused (431); 8 KiB is what most servers allow. */
export const MAX_REQUEST_HEAD = 8_192;

export type HostStep = { done: false } | { done: true; hostname: string };

const REQUEST_LINE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+ [^\s]+ HTTP\/1\.[01]$/;

function bad(message: string): never {
  throw new RelayFleetError("RF_ERR_HTTP_MALFORMED", message);
}

/** True when the first byte could start an HTTP method (a token character). */
export function looksLikeHttp(firstByte: number): boolean {
  return (firstByte >= 0x41 && firstByte <= 0x5a) || (firstByte >= 0x61 && firstByte <= 0x7a);
}

/** Parses `host[:port]` or `[v6]:port`; returns the lower-cased name or throws. */
export function parseHostHeader(value: string): string {
  const v = value.trim();
  if (v.startsWith("[")) {
    const end = v.indexOf("]");
    if (end < 0) bad("Host header has an unterminated IPv6 literal");
    return v.slice(1, end).toLowerCase();
  }
  const colon = v.lastIndexOf(":");
  const host = colon >= 0 ? v.slice(0, colon) : v;
  if (colon >= 0 && !/^\d{1,5}$/.test(v.slice(colon + 1))) bad("Host header has a bad port");
  const name = normaliseHostname(host);
  if (!name) bad("Host header is not a host name");
  return name;
}

/**
 * Incremental request-head reader: `push` chunks until `done`. Throws `RF_ERR_HTTP_MALFORMED`
 * (400: bad request line, no or several Host headers) or `RF_ERR_HTTP_TOO_LARGE` (431).
 */
export class HostHeaderParser {
  private head = "";
  private finished = false;

  push(chunk: Buffer): HostStep {
    if (this.finished) throw new RelayFleetError("RF_ERR_HTTP_STATE", "request head already parsed");
    const start = Math.max(0, this.head.length - 3);
    this.head += chunk.toString("latin1");
    const end = this.head.indexOf("\r\n\r\n", start);
    if (end < 0) {
      // Fail early on a first line that cannot be a request line, instead of waiting for 8 KiB.
      const firstEol = this.head.indexOf("\r\n");
      if (firstEol >= 0 && !REQUEST_LINE.test(this.head.slice(0, firstEol))) {
        this.finished = true;
        bad("not an HTTP/1.x request line");
      }
      if (this.head.length > MAX_REQUEST_HEAD) {
        this.finished = true;
        throw new RelayFleetError("RF_ERR_HTTP_TOO_LARGE", "request head too large");
      }
      return { done: false };
    }
    this.finished = true;
    if (end > MAX_REQUEST_HEAD) throw new RelayFleetError("RF_ERR_HTTP_TOO_LARGE", "request head too large");
    const lines = this.head.slice(0, end).split("\r\n");
    if (!REQUEST_LINE.test(lines[0]!)) bad("not an HTTP/1.x request line");
    const hosts = lines.slice(1).filter((l) => /^host:/i.test(l));
    if (hosts.length !== 1) bad(hosts.length === 0 ? "no Host header" : "more than one Host header");
    return { done: true, hostname: parseHostHeader(hosts[0]!.slice(5)) };
  }
}

/** A short HTTP/1.1 response that closes the connection (421, 400, 431, 503). */
export function httpRefusal(status: number, reason: string, body: string): Buffer {
  const text = `${body}\n`;
  return Buffer.from(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
  );
}
