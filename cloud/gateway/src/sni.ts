/**
 * A small, bounded, incremental reader of the TLS ClientHello (RFC 8446 §4.1.2, RFC 6066 §3) that
 * finds the server_name the client asked for, so a shared port can pick a route while the TLS
 * session passes through untouched (the gateway never holds the site's keys).
 *
 * It only reads: the caller keeps every byte and replays it to the site. Handshake fragments
 * spread over several records are reassembled, up to `MAX_CLIENT_HELLO` bytes; anything that is
 * not a well-formed ClientHello fails with a coded error as soon as a byte proves it.
 */
import { RelayFleetError } from "../../../lib/errors.ts";

const CONTENT_HANDSHAKE = 0x16;
const HANDSHAKE_CLIENT_HELLO = 0x01;
const EXT_SERVER_NAME = 0x0000;
const NAME_TYPE_HOST = 0x00;
/** TLSPlaintext.length may not exceed 2^14 (RFC 8446 §5.1). */
const MAX_RECORD = 16_384;
/**
 * Largest ClientHello we wait for. Real ones are 200–2,000 bytes (post-quantum key shares push
 * them toward 2 KB); 16 KiB leaves room while bounding what a hostile client can make us hold.
 */
export const MAX_CLIENT_HELLO = 16_384;

/** TLS alert codes the gateway sends when it refuses a ClientHello. */
export const ALERT_UNRECOGNIZED_NAME = 112;
export const ALERT_DECODE_ERROR = 50;
export const ALERT_HANDSHAKE_FAILURE = 40;
export const ALERT_INTERNAL_ERROR = 80;

/** A fatal alert record (TLS 1.0 record version, as servers use before negotiation). */
export function tlsAlert(description: number): Buffer {
  return Buffer.from([0x15, 0x03, 0x01, 0x00, 0x02, 0x02, description]);
}

export type SniStep = { done: false } | { done: true; serverName: string | undefined };

function malformed(message: string): never {
  throw new RelayFleetError("RF_ERR_SNI_MALFORMED", `malformed ClientHello: ${message}`);
}

/** Bounds-checked cursor: every read past the end is a coded error, never a RangeError. */
class Reader {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}
  get remaining(): number {
    return this.buf.length - this.pos;
  }
  private need(n: number, what: string): void {
    if (n > this.remaining) malformed(`${what} runs past the end`);
  }
  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.pos++]!;
  }
  u16(what: string): number {
    this.need(2, what);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  bytes(n: number, what: string): Buffer {
    this.need(n, what);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  vector8(what: string): Buffer {
    return this.bytes(this.u8(what), what);
  }
  vector16(what: string): Buffer {
    return this.bytes(this.u16(what), what);
  }
}

const HOST_LABELS = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

/** Validates and normalises a host name from the wire (lower case, no trailing dot). */
export function normaliseHostname(raw: string): string | undefined {
  const name = raw.toLowerCase().replace(/\.$/, "");
  if (name.length === 0 || name.length > 253 || !HOST_LABELS.test(name)) return undefined;
  return name;
}

/** Parses a complete ClientHello body (after the 4-byte handshake header). Exported for tests. */
export function parseClientHelloBody(body: Buffer): string | undefined {
  const r = new Reader(body);
  const major = r.u8("legacy_version");
  r.u8("legacy_version");
  if (major !== 3) malformed(`legacy_version major ${major}`);
  r.bytes(32, "random");
  if (r.vector8("session_id").length > 32) malformed("session_id longer than 32 bytes");
  const suites = r.vector16("cipher_suites");
  if (suites.length < 2 || suites.length % 2 !== 0) malformed("cipher_suites length");
  if (r.vector8("compression_methods").length < 1) malformed("no compression method");
  if (r.remaining === 0) return undefined; // no extensions at all (old clients): no SNI
  const ext = new Reader(r.vector16("extensions"));
  if (r.remaining !== 0) malformed("bytes after extensions");
  let serverName: string | undefined;
  let seen = false;
  while (ext.remaining > 0) {
    const type = ext.u16("extension type");
    const data = ext.vector16("extension data");
    if (type !== EXT_SERVER_NAME) continue;
    if (seen) malformed("server_name extension twice");
    seen = true;
    const list = new Reader(new Reader(data).vector16("server_name_list"));
    while (list.remaining > 0) {
      const nameType = list.u8("name_type");
      const name = list.vector16("host_name");
      if (nameType !== NAME_TYPE_HOST || serverName !== undefined) continue;
      // RFC 6066: ASCII host name without a trailing dot; reject anything else outright.
      const text = name.toString("latin1");
      const host = normaliseHostname(text);
      if (!host || text.length !== name.length) malformed("server_name is not a DNS host name");
      serverName = host;
    }
  }
  return serverName;
}

/**
 * Incremental ClientHello reader. `push` every chunk from the client until `done`; it throws
 * `RF_ERR_SNI_NOT_TLS` when the first byte is not a handshake record, `RF_ERR_SNI_MALFORMED` for
 * a broken record or hello and `RF_ERR_SNI_TOO_LARGE` past the bound. It holds at most one
 * record plus `MAX_CLIENT_HELLO` bytes.
 */
export class ClientHelloParser {
  private pending: Buffer = Buffer.alloc(0);
  private handshake: Buffer = Buffer.alloc(0);
  private expected = -1;
  private finished = false;

  push(chunk: Buffer): SniStep {
    if (this.finished) throw new RelayFleetError("RF_ERR_SNI_STATE", "ClientHello already parsed");
    try {
      return this.consume(chunk);
    } catch (err) {
      this.finished = true;
      throw err;
    }
  }

  private consume(chunk: Buffer): SniStep {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    for (;;) {
      const p = this.pending;
      if (p.length >= 1 && p[0] !== CONTENT_HANDSHAKE) {
        if (this.handshake.length === 0 && this.expected < 0)
          throw new RelayFleetError("RF_ERR_SNI_NOT_TLS", "first bytes are not a TLS handshake record");
        malformed(`record type ${p[0]} inside the ClientHello`);
      }
      if (p.length >= 2 && p[1] !== 3) malformed(`record version major ${p[1]}`);
      if (p.length < 5) return { done: false };
      const len = p.readUInt16BE(3);
      if (len === 0 || len > MAX_RECORD) malformed(`record length ${len}`);
      if (p.length < 5 + len) {
        if (p.length > 5 + MAX_RECORD) malformed("record overflow"); // unreachable by the check above
        return { done: false };
      }
      this.handshake = Buffer.concat([this.handshake, p.subarray(5, 5 + len)]);
      this.pending = p.subarray(5 + len);
      if (this.expected < 0 && this.handshake.length >= 4) {
        if (this.handshake[0] !== HANDSHAKE_CLIENT_HELLO) malformed(`handshake type ${this.handshake[0]}`);
        this.expected = this.handshake.readUIntBE(1, 3);
        if (this.expected > MAX_CLIENT_HELLO)
          throw new RelayFleetError(
            "RF_ERR_SNI_TOO_LARGE",
            `ClientHello of ${this.expected} bytes exceeds ${MAX_CLIENT_HELLO}`,
          );
      }
      if (this.expected >= 0 && this.handshake.length >= 4 + this.expected) {
        this.finished = true;
        return {
          done: true,
          serverName: parseClientHelloBody(this.handshake.subarray(4, 4 + this.expected)),
        };
      }
      if (this.handshake.length > 4 + MAX_CLIENT_HELLO)
        throw new RelayFleetError("RF_ERR_SNI_TOO_LARGE", "ClientHello exceeds the size bound");
    }
  }
}
