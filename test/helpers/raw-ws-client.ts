/**
 * A deliberately minimal WebSocket client over a plain TCP socket, for tests that need what ws@8
 * will not do: keep sending after receiving a close frame (a genuine half-close peer, like .NET's
 * `CloseOutputAsync`), send malformed frames, or stop mid-handshake. ws:// only.
 */
import { randomBytes } from "node:crypto";
import { connect, type Socket } from "node:net";
import type { CleanupContext } from "./index.ts";

export interface RawFrame {
  fin: boolean;
  opcode: number;
  payload: Buffer;
}

export class RawWsClient {
  readonly frames: RawFrame[] = [];
  status = 0;
  statusLine = "";
  private buffer = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  ended = false;

  private constructor(readonly socket: Socket) {}

  /** Connects and upgrades; resolves with the client once a 101 (or any status) arrived. */
  static connect(t: CleanupContext, url: string, headers: Record<string, string> = {}): Promise<RawWsClient> {
    const u = new URL(url);
    return new Promise((resolve, reject) => {
      const socket = connect(Number(u.port), u.hostname);
      const client = new RawWsClient(socket);
      t.after(() => socket.destroy());
      socket.on("error", () => undefined);
      let head = "";
      let upgraded = false;
      socket.on("connect", () => {
        const lines = [
          `GET ${u.pathname}${u.search} HTTP/1.1`,
          `Host: ${u.host}`,
          "Upgrade: websocket",
          "Connection: Upgrade",
          `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}`,
          "Sec-WebSocket-Version: 13",
          ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
        ];
        socket.write(`${lines.join("\r\n")}\r\n\r\n`);
      });
      socket.on("data", (chunk: Buffer) => {
        if (!upgraded) {
          head += chunk.toString("latin1");
          const end = head.indexOf("\r\n\r\n");
          if (end < 0) return;
          upgraded = true;
          client.statusLine = head.slice(0, head.indexOf("\r\n"));
          client.status = Number(client.statusLine.split(" ")[1]);
          client.push(Buffer.from(head.slice(end + 4), "latin1"));
          resolve(client);
          return;
        }
        client.push(chunk);
      });
      socket.on("close", () => {
        client.ended = true;
        client.wake();
        if (!upgraded) reject(new Error("socket closed before the handshake answer"));
      });
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  private push(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    for (;;) {
      if (this.buffer.length < 2) break;
      const b0 = this.buffer[0]!;
      const b1 = this.buffer[1]!;
      let len = b1 & 0x7f;
      let off = 2;
      if (len === 126) {
        if (this.buffer.length < 4) break;
        len = this.buffer.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (this.buffer.length < 10) break;
        len = Number(this.buffer.readBigUInt64BE(2));
        off = 10;
      }
      if (this.buffer.length < off + len) break;
      this.frames.push({
        fin: (b0 & 0x80) !== 0,
        opcode: b0 & 0x0f,
        payload: this.buffer.subarray(off, off + len),
      });
      this.buffer = this.buffer.subarray(off + len);
    }
    this.wake();
  }

  /** Waits until `predicate(frames)` holds or the socket ends. */
  async until(predicate: (frames: RawFrame[]) => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this.frames)) {
      if (this.ended) throw new Error("socket ended before the expected frames");
      if (Date.now() > deadline) throw new Error("timed out waiting for frames");
      await new Promise<void>((r) => {
        const timer = setTimeout(r, 100);
        this.waiters.push(() => {
          clearTimeout(timer);
          r();
        });
      });
    }
  }

  /** Writes one masked frame (client frames must be masked, RFC 6455 §5.3). */
  sendFrame(opcode: number, payload: Buffer = Buffer.alloc(0), fin = true): void {
    const mask = randomBytes(4);
    const len = payload.length;
    const header =
      len < 126
        ? Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | len])
        : len < 65536
          ? Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | 126, len >> 8, len & 0xff])
          : Buffer.concat([Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | 127]), bigLen(len)]);
    const masked = Buffer.from(payload);
    for (let i = 0; i < masked.length; i++) masked[i] = masked[i]! ^ mask[i % 4]!;
    this.socket.write(Buffer.concat([header, mask, masked]));
  }

  sendClose(code: number, reason = ""): void {
    const body = Buffer.alloc(2 + Buffer.byteLength(reason));
    body.writeUInt16BE(code, 0);
    body.write(reason, 2);
    this.sendFrame(0x8, body);
  }

  /** Payload bytes of all binary/continuation frames so far. */
  dataBytes(): number {
    return this.frames
      .filter((f) => f.opcode === 0x2 || f.opcode === 0x0)
      .reduce((n, f) => n + f.payload.length, 0);
  }

  closeFrame(): { code: number; reason: string } | undefined {
    const f = this.frames.find((x) => x.opcode === 0x8);
    if (!f) return undefined;
    return f.payload.length >= 2
      ? { code: f.payload.readUInt16BE(0), reason: f.payload.subarray(2).toString() }
      : { code: 1005, reason: "" };
  }
}

function bigLen(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}
