/**
 * Reads the first bytes of a client on a shared port until it knows the name the client wants:
 * the SNI of a TLS ClientHello (first byte 0x16) or the Host of a plain HTTP request. Every byte
 * read is kept for replay to the site. Bounded in time (`timeoutMs`) and size (the parsers').
 */
import type { Socket } from "node:net";
import { type ErrorCode, isErrorCode, RelayFleetError } from "../../../lib/errors.ts";
import { HostHeaderParser, looksLikeHttp } from "./http-host.ts";
import { ClientHelloParser } from "./sni.ts";

export type FirstBytes =
  | { protocol: "tls"; serverName: string | undefined; bytes: Buffer[] }
  | { protocol: "http"; hostname: string; bytes: Buffer[] };

/** Why the name could not be read; the protocol tells the caller how to answer (alert / HTTP). */
export class FirstBytesError extends RelayFleetError {
  constructor(
    code: ErrorCode,
    message: string,
    readonly protocol: "tls" | "http" | "unknown",
  ) {
    super(code, message);
  }
}

/**
 * Resolves with the name and the bytes, or rejects with a `FirstBytesError`:
 * `RF_ERR_GATEWAY_FIRST_BYTES_TIMEOUT`, `RF_ERR_GATEWAY_CLIENT_GONE`, `RF_ERR_SNI_*`,
 * `RF_ERR_HTTP_*`, or `RF_ERR_GATEWAY_UNKNOWN_PROTOCOL` (neither TLS nor HTTP). Leaves the socket
 * paused with no data listener.
 */
export function readFirstBytes(socket: Socket, timeoutMs: number): Promise<FirstBytes> {
  return new Promise((resolve, reject) => {
    const bytes: Buffer[] = [];
    let parser: ClientHelloParser | HostHeaderParser | undefined;
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.pause();
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.off("close", onEnd);
      fn();
    };
    const protocolOf = (): "tls" | "http" | "unknown" =>
      parser instanceof ClientHelloParser ? "tls" : parser instanceof HostHeaderParser ? "http" : "unknown";
    const onData = (chunk: Buffer) => {
      bytes.push(chunk);
      try {
        if (!parser) {
          const first = chunk[0]!;
          if (first === 0x16) parser = new ClientHelloParser();
          else if (looksLikeHttp(first)) parser = new HostHeaderParser();
          else
            throw new FirstBytesError(
              "RF_ERR_GATEWAY_UNKNOWN_PROTOCOL",
              "first bytes are neither a TLS ClientHello nor an HTTP request",
              "unknown",
            );
        }
        if (parser instanceof ClientHelloParser) {
          const step = parser.push(chunk);
          if (step.done) finish(() => resolve({ protocol: "tls", serverName: step.serverName, bytes }));
        } else {
          const step = parser.push(chunk);
          if (step.done) finish(() => resolve({ protocol: "http", hostname: step.hostname, bytes }));
        }
      } catch (err) {
        const e =
          err instanceof FirstBytesError
            ? err
            : new FirstBytesError(
                isErrorCode((err as { code?: unknown }).code)
                  ? (err as { code: ErrorCode }).code
                  : "RF_ERR_GATEWAY_UNKNOWN_PROTOCOL",
                (err as Error).message,
                protocolOf(),
              );
        finish(() => reject(e));
      }
    };
    const onEnd = () =>
      finish(() =>
        reject(
          new FirstBytesError(
            "RF_ERR_GATEWAY_CLIENT_GONE",
            "client closed before naming a host",
            protocolOf(),
          ),
        ),
      );
    const timer = setTimeout(
      () =>
        finish(() =>
          reject(
            new FirstBytesError(
              "RF_ERR_GATEWAY_FIRST_BYTES_TIMEOUT",
              `client sent no complete ClientHello / request head within ${timeoutMs} ms`,
              protocolOf(),
            ),
          ),
        ),
      timeoutMs,
    );
    socket.on("data", onData);
    socket.once("end", onEnd);
    socket.once("close", onEnd);
    socket.resume();
  });
}
