/**
 * The azbridge logical-port preamble (relay-protocol.md §4), byte-exact with
 * `Azure/azure-relay-bridge` (`TcpLocalForwardBridge.cs`, `RemoteForwardBridge.cs`):
 *
 *   sender → listener:  [1, 0, mode, len, ...utf8(portName)]   mode 0 = stream, 1 = datagram
 *   listener → sender:  [1, 0, mode]  ok
 *                       [0, 0, 0]     unsupported version
 *                       [0, 0, 1]     datagram forwarder but stream requested
 *                       [0, 0, 255]   stream forwarder but datagram requested
 *                       (close)       no port with that name
 *
 * Pure codecs: the parsers are incremental because a WebSocket peer may split the preamble over
 * several messages (or put payload bytes right behind it), so they accept any byte split and hand
 * back the bytes that follow.
 */
import { RelayFleetError } from "../errors.ts";

export const PREAMBLE_VERSION_MAJOR = 1;
export const PREAMBLE_VERSION_MINOR = 0;
/** Stream (TCP) mode. */
export const MODE_STREAM = 0;
/** Datagram (UDP) mode: each datagram framed with a 2-byte big-endian length. */
export const MODE_DATAGRAM = 1;
/** The name length is one byte. */
export const MAX_PORT_NAME_BYTES = 255;

export type PreambleMode = typeof MODE_STREAM | typeof MODE_DATAGRAM;

/** Reply bytes azbridge sends; `ok` carries the mode, the others are fixed. */
export const REPLY_UNSUPPORTED_VERSION: readonly number[] = [0, 0, 0];
export const REPLY_STREAM_UNSUPPORTED: readonly number[] = [0, 0, 1];
export const REPLY_DATAGRAM_UNSUPPORTED: readonly number[] = [0, 0, 255];

export interface Preamble {
  mode: PreambleMode;
  portName: string;
}

/** Result of feeding bytes to a parser: still waiting, or done with whatever bytes followed. */
export type ParseStep<T> = { done: false } | { done: true; value: T; rest: Buffer };

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Encodes the sender's preamble. Throws `RF_ERR_PREAMBLE_NAME` for an empty or > 255-byte name. */
export function encodePreamble(portName: string, mode: PreambleMode = MODE_STREAM): Buffer {
  const name = Buffer.from(portName, "utf8");
  if (name.length === 0 || name.length > MAX_PORT_NAME_BYTES) {
    throw new RelayFleetError(
      "RF_ERR_PREAMBLE_NAME",
      `port name must be 1..${MAX_PORT_NAME_BYTES} UTF-8 bytes, got ${name.length}`,
    );
  }
  const out = Buffer.allocUnsafe(4 + name.length);
  out[0] = PREAMBLE_VERSION_MAJOR;
  out[1] = PREAMBLE_VERSION_MINOR;
  out[2] = mode;
  out[3] = name.length;
  name.copy(out, 4);
  return out;
}

/** Encodes the listener's OK reply `[1, 0, mode]`. */
export function encodeReplyOk(mode: PreambleMode = MODE_STREAM): Buffer {
  return Buffer.from([PREAMBLE_VERSION_MAJOR, PREAMBLE_VERSION_MINOR, mode]);
}

/** Why a listener refuses a preamble; `no-such-port` is answered by closing, not by bytes. */
export type RefusalReason = "unsupported-version" | "stream-unsupported" | "datagram-unsupported";

/** Encodes one of azbridge's error replies. */
export function encodeReplyError(reason: RefusalReason): Buffer {
  switch (reason) {
    case "unsupported-version":
      return Buffer.from(REPLY_UNSUPPORTED_VERSION);
    case "stream-unsupported":
      return Buffer.from(REPLY_STREAM_UNSUPPORTED);
    case "datagram-unsupported":
      return Buffer.from(REPLY_DATAGRAM_UNSUPPORTED);
  }
}

/** Accumulates chunks without copying until a given byte count is available. */
class ByteCollector {
  private chunks: Buffer[] = [];
  private length = 0;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  get size(): number {
    return this.length;
  }

  /** Concatenates everything collected (called once per parse, on small buffers). */
  all(): Buffer {
    if (this.chunks.length === 1) return this.chunks[0]!;
    const joined = Buffer.concat(this.chunks, this.length);
    this.chunks = [joined];
    return joined;
  }
}

/**
 * Incremental parser of the sender's preamble, for the listener side. Feed it every chunk; it
 * answers `{done:false}` until the whole preamble is in, then the preamble plus the rest. It
 * throws `RelayFleetError` with `RF_ERR_PREAMBLE_VERSION` (answer `[0,0,0]`),
 * `RF_ERR_PREAMBLE_MODE` (unknown mode byte, also answered `[0,0,0]` as azbridge does) or
 * `RF_ERR_PREAMBLE_NAME` (name not UTF-8). After `done` or an error, further pushes throw
 * `RF_ERR_PREAMBLE_STATE`.
 */
export class PreambleParser {
  private readonly bytes = new ByteCollector();
  private finished = false;

  push(chunk: Buffer): ParseStep<Preamble> {
    if (this.finished) throw new RelayFleetError("RF_ERR_PREAMBLE_STATE", "preamble already parsed");
    this.bytes.push(chunk);
    const size = this.bytes.size;
    if (size === 0) return { done: false };
    const buf = this.bytes.all();
    // Fail on a bad version as soon as the byte arrives: no need to wait for a name.
    if (buf[0] !== PREAMBLE_VERSION_MAJOR || (size > 1 && buf[1] !== PREAMBLE_VERSION_MINOR)) {
      this.finished = true;
      throw new RelayFleetError(
        "RF_ERR_PREAMBLE_VERSION",
        `unsupported preamble version ${buf[0]}.${size > 1 ? buf[1] : "?"}`,
      );
    }
    if (size > 2 && buf[2] !== MODE_STREAM && buf[2] !== MODE_DATAGRAM) {
      this.finished = true;
      throw new RelayFleetError("RF_ERR_PREAMBLE_MODE", `unknown preamble mode ${buf[2]}`);
    }
    if (size < 4) return { done: false };
    const nameLength = buf[3]!;
    if (size < 4 + nameLength) return { done: false };
    this.finished = true;
    let portName: string;
    try {
      portName = utf8.decode(buf.subarray(4, 4 + nameLength));
    } catch {
      throw new RelayFleetError("RF_ERR_PREAMBLE_NAME", "preamble port name is not valid UTF-8");
    }
    return {
      done: true,
      value: { mode: buf[2] as PreambleMode, portName },
      rest: buf.subarray(4 + nameLength),
    };
  }
}

/** The listener's answer as the sender sees it. */
export type PreambleReply =
  | { ok: true; mode: PreambleMode }
  | { ok: false; reason: RefusalReason | "unknown" };

/** Decodes a complete 3-byte reply. */
export function decodeReply(reply: Uint8Array): PreambleReply {
  const [a, b, c] = [reply[0], reply[1], reply[2]];
  if (
    a === PREAMBLE_VERSION_MAJOR &&
    b === PREAMBLE_VERSION_MINOR &&
    (c === MODE_STREAM || c === MODE_DATAGRAM)
  )
    return { ok: true, mode: c };
  if (a === 0 && b === 0 && c === 0) return { ok: false, reason: "unsupported-version" };
  if (a === 0 && b === 0 && c === 1) return { ok: false, reason: "stream-unsupported" };
  if (a === 0 && b === 0 && c === 255) return { ok: false, reason: "datagram-unsupported" };
  return { ok: false, reason: "unknown" };
}

/** Incremental parser of the 3-byte reply, for the sender side (any byte split). */
export class ReplyParser {
  private readonly bytes = new ByteCollector();
  private finished = false;

  push(chunk: Buffer): ParseStep<PreambleReply> {
    if (this.finished) throw new RelayFleetError("RF_ERR_PREAMBLE_STATE", "reply already parsed");
    this.bytes.push(chunk);
    if (this.bytes.size < 3) return { done: false };
    this.finished = true;
    const buf = this.bytes.all();
    return { done: true, value: decodeReply(buf), rest: buf.subarray(3) };
  }
}
