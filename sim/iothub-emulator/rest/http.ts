/**
 * HTTP plumbing for the REST surface: bounded body reading, JSON answers with the content type
 * the SDK needs to parse them, and IoT Hub error bodies (`{"Message":"ErrorCode:X;text",…}` plus
 * `iothub-errorcode`), from which azure-iothub maps its error classes.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { errorMessage } from "../../../lib/errors.ts";
import { HubError } from "../errors.ts";
import type { Json } from "../state/json.ts";

/** Largest request body accepted; twins are at most ~50 KB, so this is generous. */
export const MAX_BODY_BYTES = 1024 * 1024;

export type ErrorFormat = "legacy" | "modern";

export interface RestResult {
  status: number;
  body?: Json;
  headers?: Record<string, string>;
}

/** Reads the body; rejects with 413 past the limit. */
export function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new HubError("RequestEntityTooLarge", `request body exceeds ${MAX_BODY_BYTES} bytes`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

export function sendResult(res: ServerResponse, result: RestResult): void {
  if (res.headersSent) return;
  const headers: Record<string, string> = { ...result.headers };
  if (result.status === 204 || result.body === undefined) {
    res.writeHead(result.status, headers).end();
    return;
  }
  const text = JSON.stringify(result.body);
  headers["content-type"] = "application/json; charset=utf-8";
  headers["content-length"] = String(Buffer.byteLength(text));
  res.writeHead(result.status, headers).end(text);
}

/** Renders an error the way the hub does, so the SDK maps it (404 DeviceNotFound → DeviceNotFoundError). */
export function errorResult(err: unknown, format: ErrorFormat): RestResult {
  const hubErr = err instanceof HubError ? err : new HubError("ServerError", errorMessage(err));
  const trackingId = randomUUID().replace(/-/g, "");
  const timestamp = new Date().toISOString();
  const Message =
    format === "legacy"
      ? `ErrorCode:${hubErr.hubCode};${hubErr.message.replace(/;/g, ",")}`
      : JSON.stringify({
          errorCode: hubErr.numericCode,
          trackingId,
          message: hubErr.message,
          timestampUtc: timestamp,
        });
  return {
    status: hubErr.status ?? 500,
    body: {
      Message,
      ExceptionMessage: format === "legacy" ? `Tracking ID:${trackingId}-G:0-TimeStamp:${timestamp}` : "",
    },
    headers: {
      "iothub-errorcode": hubErr.hubCode,
      ...(hubErr.retryAfterSeconds !== undefined ? { "retry-after": String(hubErr.retryAfterSeconds) } : {}),
    },
  };
}
