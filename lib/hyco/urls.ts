/**
 * Hybrid Connections URLs (relay-protocol.md §1.1) built from an endpoint in any of the forms the
 * project meets: `sb://host[:port]` (Azure connection strings; means `wss`), `wss://host[:port]`,
 * `ws://host[:port]` (the plain local emulator) or a bare `host[:port]`.
 *
 *   listen   {scheme}://{host}/$hc/{hc}?sb-hc-action=listen&sb-hc-id={id}
 *   connect  {scheme}://{host}/$hc/{hc}?sb-hc-action=connect&sb-hc-id={id}
 *   reject   {accept address}&sb-hc-statusCode={code}&sb-hc-statusDescription={text}
 *
 * Tokens travel in the `ServiceBusAuthorization` header (as hyco-ws and .NET do), so URLs built
 * here carry no secret unless the caller asks for the query form.
 */
import { RelayFleetError } from "../errors.ts";
import { audienceFor } from "./sas.ts";

export interface RelayEndpoint {
  scheme: "ws" | "wss";
  /** Host name as given (lower-cased). */
  host: string;
  /** Explicit port, or undefined for the scheme's default. */
  port?: number;
  /** `host[:port]` as it goes into a URL (IPv6 in brackets). */
  authority: string;
}

// Every sender connect parses its endpoint several times (scheme, token audience, URL); a WHATWG
// URL parse is ~10 µs on the setup path, and a process talks to one or a few relays.
const parsedEndpoints = new Map<string, Readonly<RelayEndpoint>>();

/** Parses an endpoint; throws `RF_ERR_RELAY_ENDPOINT` for anything that is not one of the forms. */
export function parseEndpoint(endpoint: string): Readonly<RelayEndpoint> {
  let parsed = parsedEndpoints.get(endpoint);
  if (parsed) return parsed;
  parsed = Object.freeze(parseEndpointUncached(endpoint));
  if (parsedEndpoints.size >= 100) parsedEndpoints.clear();
  parsedEndpoints.set(endpoint, parsed);
  return parsed;
}

function parseEndpointUncached(endpoint: string): RelayEndpoint {
  const raw = endpoint.trim();
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `sb://${raw}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch (err) {
    throw new RelayFleetError("RF_ERR_RELAY_ENDPOINT", `relay endpoint '${endpoint}' is not a URI`, {
      cause: err,
    });
  }
  const protocol = url.protocol.toLowerCase();
  let scheme: "ws" | "wss";
  if (protocol === "ws:" || protocol === "http:") scheme = "ws";
  else if (protocol === "wss:" || protocol === "sb:" || protocol === "https:") scheme = "wss";
  else
    throw new RelayFleetError(
      "RF_ERR_RELAY_ENDPOINT",
      `relay endpoint '${endpoint}' must use sb://, wss:// or ws://`,
    );
  if (!url.hostname)
    throw new RelayFleetError("RF_ERR_RELAY_ENDPOINT", `relay endpoint '${endpoint}' has no host`);
  const host = url.hostname.toLowerCase();
  const port = url.port === "" ? undefined : Number(url.port);
  // sb:// with an explicit port keeps it, as the .NET SDK's BuildUri does.
  return { scheme, host, port, authority: port === undefined ? host : `${host}:${port}` };
}

/** Encodes a hybrid connection path (names may contain `/`), segment by segment. */
export function encodeEntityPath(hybridConnection: string): string {
  const trimmed = hybridConnection.replace(/^\/+|\/+$/g, "");
  if (!trimmed) throw new RelayFleetError("RF_ERR_RELAY_ENDPOINT", "hybrid connection name is empty");
  return trimmed.split("/").map(encodeURIComponent).join("/");
}

export interface UrlOptions {
  /** Tracking id (`sb-hc-id`). */
  id?: string;
  /** When set, the token goes into the query (`sb-hc-token`) instead of a header. */
  token?: string;
}

function build(endpoint: string, hybridConnection: string, action: string, options: UrlOptions): string {
  const ep = parseEndpoint(endpoint);
  let url = `${ep.scheme}://${ep.authority}/$hc/${encodeEntityPath(hybridConnection)}?sb-hc-action=${action}`;
  if (options.id) url += `&sb-hc-id=${encodeURIComponent(options.id)}`;
  if (options.token) url += `&sb-hc-token=${encodeURIComponent(options.token)}`;
  return url;
}

/** URL of the listener's control channel. */
export function listenUrl(endpoint: string, hybridConnection: string, options: UrlOptions = {}): string {
  return build(endpoint, hybridConnection, "listen", options);
}

/** URL a sender connects to. */
export function connectUrl(endpoint: string, hybridConnection: string, options: UrlOptions = {}): string {
  return build(endpoint, hybridConnection, "connect", options);
}

/**
 * Reject form of an accept address: the address used as is (it is the credential), plus status and
 * description. The relay answers 410 Gone when it took the rejection.
 */
export function rejectUrl(acceptAddress: string, statusCode: number, description: string): string {
  const sep = acceptAddress.includes("?") ? "&" : "?";
  // Keep the description in the reason-phrase character set: no control characters, bounded.
  const clean = description.replace(/[^\x20-\x7e]/g, " ").slice(0, 256);
  return `${acceptAddress}${sep}sb-hc-statusCode=${statusCode}&sb-hc-statusDescription=${encodeURIComponent(clean)}`;
}

/** The audience a token for this hybrid connection is signed for (`http://host/hc`). */
export function tokenAudience(endpoint: string, hybridConnection: string): string {
  const ep = parseEndpoint(endpoint);
  return audienceFor(`sb://${ep.authority}`, hybridConnection);
}
