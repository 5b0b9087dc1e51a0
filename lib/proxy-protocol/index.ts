/**
 * PROXY protocol version 2 (the binary form, haproxy's `proxy-protocol.txt` §2.2), encode and an
 * incremental parser. The gateway writes one header at the start of a tunnel so the site's target
 * can see the real client address; the module either removes it (`strip`) or passes it on
 * (`forward`). Only what a TCP relay needs: PROXY and LOCAL commands, TCP over IPv4 / IPv6 and
 * UNSPEC; TLVs are kept as raw bytes.
 *
 *   signature  \r\n\r\n\0\r\nQUIT\n           12 bytes
 *   ver_cmd    0x2_ (version 2) | 0x_0 LOCAL, 0x_1 PROXY
 *   fam        0x11 TCP4, 0x21 TCP6, 0x00 UNSPEC (others: address family/protocol nibbles)
 *   len        uint16 BE, bytes that follow (addresses + TLVs)
 *   addresses  TCP4: src 4, dst 4, sport 2, dport 2 (12) / TCP6: 16, 16, 2, 2 (36)
 */
import ipaddr from "ipaddr.js";
import { type ErrorCode, RelayFleetError } from "../errors.ts";

/** The 12-byte signature every v2 header starts with. */
export const PROXY_V2_SIGNATURE: Buffer = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
]);
/** Signature + ver_cmd + fam + len. */
export const PROXY_V2_FIXED_LENGTH = 16;
/**
 * Largest header the parser accepts by default. The format allows 16 + 65535 bytes, but a relay
 * only needs addresses and a few TLVs; a bound keeps a hostile peer from making us buffer 64 KiB.
 */
export const PROXY_V2_DEFAULT_MAX_LENGTH = 1024;

const FAM_UNSPEC = 0x00;
const FAM_TCP4 = 0x11;
const FAM_TCP6 = 0x21;
const TCP4_ADDR_LEN = 12;
const TCP6_ADDR_LEN = 36;

/** A decoded header. `LOCAL` (a health check from the proxy itself) carries no addresses. */
export type ProxyHeader =
  | {
      command: "PROXY";
      family: "TCP4" | "TCP6";
      sourceAddress: string;
      sourcePort: number;
      destinationAddress: string;
      destinationPort: number;
      /** Raw TLV bytes after the addresses (possibly empty). */
      tlvs: Buffer;
      /** Total header length in bytes. */
      length: number;
    }
  | { command: "LOCAL" | "PROXY"; family: "UNSPEC"; tlvs: Buffer; length: number };

/** What the encoder needs: the client's address and the address it connected to. */
export interface ProxyEndpoints {
  sourceAddress: string;
  sourcePort: number;
  destinationAddress: string;
  destinationPort: number;
}

/** Parses an address, turning an IPv4-mapped IPv6 one (`::ffff:1.2.3.4`, dual-stack sockets) into IPv4. */
function parseAddress(address: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  if (!ipaddr.isValid(address)) return undefined;
  return ipaddr.process(address);
}

function addressToBytes(address: ipaddr.IPv4 | ipaddr.IPv6, asV6: boolean): number[] {
  if (address.kind() === "ipv4" && asV6) return (address as ipaddr.IPv4).toIPv4MappedAddress().toByteArray();
  return address.toByteArray();
}

function bytesToAddress(bytes: Buffer): string {
  const addr = ipaddr.fromByteArray([...bytes]);
  return addr.kind() === "ipv6" ? (addr as ipaddr.IPv6).toRFC5952String() : addr.toString();
}

/**
 * Encodes a PROXY (or LOCAL, when `endpoints` is undefined) header. Mixed families (an IPv4
 * client on an IPv6 listener) are reported as TCP6 with a mapped address, as haproxy does.
 * Throws `RF_ERR_PROXY_ADDRESS` for an address that is not an IP literal.
 */
export function encodeProxyV2(endpoints?: ProxyEndpoints): Buffer {
  if (!endpoints) {
    return Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x20, FAM_UNSPEC, 0, 0])]);
  }
  const src = parseAddress(endpoints.sourceAddress);
  const dst = parseAddress(endpoints.destinationAddress);
  if (!src)
    throw new RelayFleetError("RF_ERR_PROXY_ADDRESS", `'${endpoints.sourceAddress}' is not an IP address`);
  if (!dst)
    throw new RelayFleetError(
      "RF_ERR_PROXY_ADDRESS",
      `'${endpoints.destinationAddress}' is not an IP address`,
    );
  for (const port of [endpoints.sourcePort, endpoints.destinationPort]) {
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw new RelayFleetError("RF_ERR_PROXY_ADDRESS", `port ${port} is out of range`);
  }
  const v4 = src.kind() === "ipv4" && dst.kind() === "ipv4";
  const body = Buffer.alloc(v4 ? TCP4_ADDR_LEN : TCP6_ADDR_LEN);
  const addrLen = v4 ? 4 : 16;
  Buffer.from(addressToBytes(src, !v4)).copy(body, 0);
  Buffer.from(addressToBytes(dst, !v4)).copy(body, addrLen);
  body.writeUInt16BE(endpoints.sourcePort, 2 * addrLen);
  body.writeUInt16BE(endpoints.destinationPort, 2 * addrLen + 2);
  const fixed = Buffer.from([0x21, v4 ? FAM_TCP4 : FAM_TCP6, 0, 0]);
  fixed.writeUInt16BE(body.length, 2);
  return Buffer.concat([PROXY_V2_SIGNATURE, fixed, body]);
}

/** Result of feeding bytes to the parser: still waiting, or done with the bytes that followed. */
export type ProxyParseStep = { done: false } | { done: true; header: ProxyHeader; rest: Buffer };

function fail(code: ErrorCode, message: string): never {
  throw new RelayFleetError(code, message);
}

/**
 * Incremental PROXY v2 parser for the receiving side (the module in `strip` / `forward` mode).
 * Feed it every chunk until `done`; it fails as soon as a byte proves the input is not a v2
 * header (`RF_ERR_PROXY_SIGNATURE`), and with `RF_ERR_PROXY_VERSION`, `RF_ERR_PROXY_COMMAND`,
 * `RF_ERR_PROXY_TOO_LONG` or `RF_ERR_PROXY_TRUNCATED` (the address block is shorter than the
 * family needs). It never buffers more than `maxLength` bytes of header. `raw` of a done step is
 * the exact header bytes, for `forward` mode.
 */
export class ProxyHeaderParser {
  private buf: Buffer = Buffer.alloc(0);
  private finished = false;

  constructor(private readonly maxLength = PROXY_V2_DEFAULT_MAX_LENGTH) {}

  push(chunk: Buffer): ProxyParseStep & { raw?: Buffer } {
    if (this.finished) fail("RF_ERR_PROXY_STATE", "PROXY header already parsed");
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const buf = this.buf;
    const sigBytes = Math.min(buf.length, PROXY_V2_SIGNATURE.length);
    if (buf.subarray(0, sigBytes).compare(PROXY_V2_SIGNATURE, 0, sigBytes) !== 0) {
      this.finished = true;
      fail("RF_ERR_PROXY_SIGNATURE", "stream does not start with a PROXY v2 signature");
    }
    if (buf.length < PROXY_V2_FIXED_LENGTH) return { done: false };
    const verCmd = buf[12]!;
    const fam = buf[13]!;
    const len = buf.readUInt16BE(14);
    if (verCmd >> 4 !== 2) {
      this.finished = true;
      fail("RF_ERR_PROXY_VERSION", `PROXY protocol version ${verCmd >> 4} is not supported`);
    }
    const cmd = verCmd & 0x0f;
    if (cmd !== 0 && cmd !== 1) {
      this.finished = true;
      fail("RF_ERR_PROXY_COMMAND", `unknown PROXY command ${cmd}`);
    }
    const total = PROXY_V2_FIXED_LENGTH + len;
    if (total > this.maxLength) {
      this.finished = true;
      fail("RF_ERR_PROXY_TOO_LONG", `PROXY header of ${total} bytes exceeds ${this.maxLength}`);
    }
    if (buf.length < total) return { done: false };
    this.finished = true;
    const body = buf.subarray(PROXY_V2_FIXED_LENGTH, total);
    const raw = buf.subarray(0, total);
    const rest = buf.subarray(total);
    const command = cmd === 0 ? "LOCAL" : "PROXY";
    if (command === "PROXY" && (fam === FAM_TCP4 || fam === FAM_TCP6)) {
      const need = fam === FAM_TCP4 ? TCP4_ADDR_LEN : TCP6_ADDR_LEN;
      if (body.length < need)
        fail("RF_ERR_PROXY_TRUNCATED", `address block of ${body.length} < ${need} bytes`);
      const header: ProxyHeader =
        fam === FAM_TCP4
          ? {
              command,
              family: "TCP4",
              sourceAddress: bytesToAddress(body.subarray(0, 4)),
              destinationAddress: bytesToAddress(body.subarray(4, 8)),
              sourcePort: body.readUInt16BE(8),
              destinationPort: body.readUInt16BE(10),
              tlvs: Buffer.from(body.subarray(need)),
              length: total,
            }
          : {
              command,
              family: "TCP6",
              sourceAddress: bytesToAddress(body.subarray(0, 16)),
              destinationAddress: bytesToAddress(body.subarray(16, 32)),
              sourcePort: body.readUInt16BE(32),
              destinationPort: body.readUInt16BE(34),
              tlvs: Buffer.from(body.subarray(need)),
              length: total,
            };
      return { done: true, header, rest, raw };
    }
    // LOCAL, or PROXY over a family a TCP relay does not interpret (UNIX, UDP, UNSPEC): the spec
    // says the receiver must accept it and use the real connection's addresses.
    return {
      done: true,
      header: { command, family: "UNSPEC", tlvs: Buffer.from(body), length: total },
      rest,
      raw,
    };
  }
}

/** Parses a complete header at the start of `buf`; throws `RF_ERR_PROXY_TRUNCATED` when more bytes are needed. */
export function parseProxyV2(
  buf: Buffer,
  maxLength = PROXY_V2_DEFAULT_MAX_LENGTH,
): { header: ProxyHeader; rest: Buffer } {
  const step = new ProxyHeaderParser(maxLength).push(buf);
  if (!step.done) fail("RF_ERR_PROXY_TRUNCATED", "PROXY header is incomplete");
  return { header: step.header, rest: step.rest };
}
