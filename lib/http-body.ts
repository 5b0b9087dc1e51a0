/**
 * Reads an HTTP request body of bounded size, for the project's own HTTP servers (the rollout's
 * local server, the identity emulator). A larger body is refused as soon as it is seen (from
 * Content-Length, or when the count passes the limit) and the rest is read and dropped rather than
 * the socket reset, so the client gets to read the 413; past `maxDiscardBytes` the socket goes.
 */
import type { IncomingMessage } from "node:http";

export interface BodyLimit {
  maxBytes: number;
  /** What is read and dropped past `maxBytes` before the socket is destroyed. */
  maxDiscardBytes: number;
  /** The error a body over `maxBytes` rejects with (the caller's code and status). */
  tooLarge: () => Error;
}

/** The body as UTF-8 text, or a rejection with `limit.tooLarge()` or the request's own error. */
export function readLimitedBody(req: IncomingMessage, limit: BodyLimit): Promise<string> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"]);
    if (Number.isFinite(declared) && declared > limit.maxBytes) {
      req.resume(); // drop what is sent; Node keeps the connection for the answer
      reject(limit.tooLarge());
      return;
    }
    let size = 0;
    let refused = false;
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (refused) {
        if (size > limit.maxDiscardBytes) req.destroy();
        return;
      }
      if (size > limit.maxBytes) {
        refused = true;
        chunks.length = 0;
        reject(limit.tooLarge());
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}
