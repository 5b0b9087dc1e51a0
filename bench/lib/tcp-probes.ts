/**
 * Measurements every path benchmark takes the same way: a bulk echo transfer (bytes out and back
 * at once, so both directions of the path are loaded) and a connect-send-receive-close loop.
 */
import { connect, type Socket } from "node:net";

export interface Endpoint {
  host: string;
  port: number;
}

function open(ep: Endpoint): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: ep.host, port: ep.port, noDelay: true });
    socket.once("connect", () => resolve(socket));
    socket.once("error", reject);
  });
}

/** Sends `totalBytes` through an echo service and reads them back; returns MiB/s of payload. */
export async function echoThroughput(ep: Endpoint, totalBytes: number): Promise<number> {
  const socket = await open(ep);
  const chunk = Buffer.alloc(64 * 1024, 0x5a);
  const started = process.hrtime.bigint();
  let received = 0;
  const done = new Promise<void>((resolve, reject) => {
    socket.on("data", (data: Buffer) => {
      received += data.length;
      if (received >= totalBytes) resolve();
    });
    socket.once("error", reject);
    socket.once("close", () =>
      received >= totalBytes ? resolve() : reject(new Error(`closed after ${received} bytes`)),
    );
  });
  let sent = 0;
  while (sent < totalBytes) {
    const n = Math.min(chunk.length, totalBytes - sent);
    sent += n;
    if (!socket.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
      await new Promise((r) => socket.once("drain", r));
    }
  }
  await done;
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  socket.destroy();
  return totalBytes / 2 ** 20 / seconds;
}

/** Connect, send one byte, wait for its echo, close: `count` times; returns sorted latencies in ms. */
export async function setupLatencies(ep: Endpoint, count: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = process.hrtime.bigint();
    const socket = await open(ep);
    await new Promise<void>((resolve, reject) => {
      socket.once("data", () => resolve());
      socket.once("error", reject);
      socket.write("x");
    });
    out.push(Number(process.hrtime.bigint() - started) / 1e6);
    socket.destroy();
  }
  return out.sort((a, b) => a - b);
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

/** CPU seconds (user + system) a process has used so far, read from /proc (Linux). */
export async function cpuSecondsOf(pid: number): Promise<number | undefined> {
  try {
    const { readFile } = await import("node:fs/promises");
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]);
    return ticks / 100;
  } catch {
    return undefined;
  }
}
