/**
 * New connections, `concurrency` at once for `durationMs`: each loop connects, sends an HTTP/1.1
 * GET with `Connection: close`, records the time from connect() to the first response byte, reads
 * to the end and starts again. wrk gives the request rate; this gives connect-to-first-byte
 * percentiles, which wrk's latency (measured from the request write) leaves out.
 */
import { connect } from "node:net";

/** One request (connect, answer, close) longer than this is a failure. */
const CONNECTION_TIMEOUT_MS = 10_000;

export interface ConnectProbeResult {
  /** Completed requests per second. */
  rate: number;
  /** Sorted connect-to-first-byte times, ms. */
  firstByteMs: number[];
  failures: number;
}

export async function connectProbe(
  host: string,
  port: number,
  concurrency: number,
  durationMs: number,
): Promise<ConnectProbeResult> {
  const request = Buffer.from(`GET / HTTP/1.1\r\nHost: ${host}:${port}\r\nConnection: close\r\n\r\n`);
  const firstByteMs: number[] = [];
  let failures = 0;
  let completed = 0;
  const deadline = Date.now() + durationMs;
  const one = () =>
    new Promise<void>((resolve) => {
      const started = process.hrtime.bigint();
      const socket = connect({ host, port, noDelay: true });
      // A connection that hangs counts as failed instead of stalling the loop.
      socket.setTimeout(CONNECTION_TIMEOUT_MS, () => socket.destroy(new Error("timed out")));
      let first = true;
      socket.once("connect", () => socket.write(request));
      socket.on("data", () => {
        if (!first) return;
        first = false;
        firstByteMs.push(Number(process.hrtime.bigint() - started) / 1e6);
      });
      socket.once("error", () => {
        failures++;
        socket.destroy();
        resolve();
      });
      socket.once("close", (hadError) => {
        if (!hadError && !first) completed++;
        else if (!hadError) failures++;
        resolve();
      });
    });
  const started = Date.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < deadline) await one();
    }),
  );
  return {
    rate: completed / ((Date.now() - started) / 1000),
    firstByteMs: firstByteMs.sort((a, b) => a - b),
    failures,
  };
}
