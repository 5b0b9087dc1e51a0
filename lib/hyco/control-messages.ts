/**
 * JSON messages on the listener's control channel (relay-protocol.md §1.2), shapes from the .NET
 * SDK's `ListenerCommand.cs`:
 *
 *   service → listener  {"accept":{address,id,connectHeaders,remoteEndpoint}}
 *                       {"request":{address?,id,requestTarget,method,requestHeaders,body?}}
 *   listener → service  {"renewToken":{"token":"SharedAccessSignature …"}}
 *
 * `parseControlMessage` never throws anything but `RelayFleetError` with code
 * `RF_ERR_RELAY_CONTROL_MALFORMED`; a well-formed JSON object with no known key comes back as
 * `{kind:"unknown"}` so the listener ignores it, as .NET does.
 */
import { z } from "zod";
import { RelayFleetError } from "../errors.ts";

/** Control frames are small; anything bigger is hostile or broken (requests are ≤ 64 kB inline). */
export const MAX_CONTROL_MESSAGE_BYTES = 256 * 1024;

const wsUrl = z
  .string()
  .min(1)
  .refine((value) => {
    try {
      const u = new URL(value);
      return u.protocol === "ws:" || u.protocol === "wss:";
    } catch {
      return false;
    }
  }, "must be a ws:// or wss:// URL");

// Header values are strings on the wire; be lenient on numbers (some proxies) but nothing else.
const headers = z.record(z.string(), z.union([z.string(), z.number().transform(String)]));

const acceptSchema = z.looseObject({
  address: wsUrl,
  id: z.string().min(1).max(1024),
  connectHeaders: headers.optional().default({}),
  remoteEndpoint: z
    .looseObject({ address: z.string().optional(), port: z.number().int().min(0).max(65535).optional() })
    .optional(),
});

const requestSchema = z.looseObject({
  address: wsUrl.optional(),
  id: z.string().min(1).max(1024),
  requestTarget: z.string(),
  method: z.string().min(1),
  requestHeaders: headers.optional().default({}),
  body: z.boolean().optional(),
  remoteEndpoint: z
    .looseObject({ address: z.string().optional(), port: z.number().int().min(0).max(65535).optional() })
    .optional(),
});

const renewTokenSchema = z.looseObject({ token: z.string().min(1) });

export type AcceptMessage = z.output<typeof acceptSchema>;
export type RequestMessage = z.output<typeof requestSchema>;
export type RenewTokenMessage = z.output<typeof renewTokenSchema>;

export type ControlMessage =
  | { kind: "accept"; accept: AcceptMessage }
  | { kind: "request"; request: RequestMessage }
  | { kind: "renewToken"; renewToken: RenewTokenMessage }
  | { kind: "unknown"; keys: string[] };

function malformed(reason: string, cause?: unknown): RelayFleetError {
  return new RelayFleetError("RF_ERR_RELAY_CONTROL_MALFORMED", `malformed control message: ${reason}`, {
    cause,
  });
}

function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return "invalid";
  return `${issue.path.join(".") || "(root)"}: ${issue.message}`;
}

/** Parses one control frame (text or binary, UTF-8 JSON). */
export function parseControlMessage(data: string | Buffer | ArrayBuffer | Buffer[]): ControlMessage {
  let text: string;
  if (typeof data === "string") text = data;
  else if (Array.isArray(data)) text = Buffer.concat(data).toString("utf8");
  else if (data instanceof ArrayBuffer) text = Buffer.from(data).toString("utf8");
  else if (Buffer.isBuffer(data)) text = data.toString("utf8");
  else throw malformed("not text");
  if (text.length > MAX_CONTROL_MESSAGE_BYTES)
    throw malformed(`larger than ${MAX_CONTROL_MESSAGE_BYTES} bytes`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw malformed("not JSON", err);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw malformed("not a JSON object");
  const obj = json as Record<string, unknown>;
  if ("accept" in obj) {
    const r = acceptSchema.safeParse(obj.accept);
    if (!r.success) throw malformed(`accept.${firstIssue(r.error)}`);
    return { kind: "accept", accept: r.data };
  }
  if ("renewToken" in obj) {
    const r = renewTokenSchema.safeParse(obj.renewToken);
    if (!r.success) throw malformed(`renewToken.${firstIssue(r.error)}`);
    return { kind: "renewToken", renewToken: r.data };
  }
  if ("request" in obj) {
    const r = requestSchema.safeParse(obj.request);
    if (!r.success) throw malformed(`request.${firstIssue(r.error)}`);
    return { kind: "request", request: r.data };
  }
  return { kind: "unknown", keys: Object.keys(obj) };
}

/** Encodes the listener's `renewToken` command. */
export function encodeRenewToken(token: string): string {
  return JSON.stringify({ renewToken: { token } });
}

/**
 * Encodes the listener's `response` to an HTTP-mode `request` (relay-protocol.md §1.4), without a
 * body: the listener answers on the control channel, which the relay allows for small responses.
 */
export function encodeResponse(response: {
  requestId: string;
  statusCode: number;
  statusDescription: string;
  responseHeaders?: Record<string, string>;
}): string {
  return JSON.stringify({ response: { ...response, body: false } });
}

/** Encodes an `accept` command (used by the emulator and by tests). */
export function encodeAccept(accept: {
  address: string;
  id: string;
  connectHeaders: Record<string, string>;
  remoteEndpoint?: { address: string; port: number };
}): string {
  return JSON.stringify({ accept });
}
