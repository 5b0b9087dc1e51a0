/**
 * Typed errors with stable codes (`RF_ERR_<AREA>_<WHAT>`). `ERROR_CODES` is the one table of
 * them: each code's HTTP status (when it is raised while serving a request), WebSocket close code
 * (when it closes a WebSocket) and one-line meaning. `docs/errors.md` lists exactly these codes
 * (a unit test checks it); call sites name a code and get its status from here.
 *
 * Callers and tests match on `code`, never on the message text: two copies of this library can
 * coexist in one process (a CLI loading a plugin, say), so `instanceof` is not reliable.
 */

/**
 * `status` / `closeCode`: fixed by the code, or `"peer"` where the code reports what a peer
 * answered (the relay's HTTP status, the listener's close code): the call site passes it then.
 */
export interface ErrorCodeInfo {
  readonly status?: number | "peer";
  readonly closeCode?: number | "peer";
  readonly meaning: string;
}

// biome-ignore format: one code per line reads as the table it is
export const ERROR_CODES = {
  RF_ERR_SAS_MALFORMED: { status: 401, meaning: "a SAS token that cannot be parsed" },
  RF_ERR_SAS_UNKNOWN_RULE: { status: 401, meaning: "the token names an authorization rule that does not exist" },
  RF_ERR_SAS_BAD_SIGNATURE: { status: 401, meaning: "the signature does not match any key of the rule" },
  RF_ERR_SAS_EXPIRED: { status: 401, meaning: "the token's se is in the past" },
  RF_ERR_SAS_WRONG_AUDIENCE: { status: 403, meaning: "the token is valid but for another host or entity" },
  RF_ERR_ENTRA_MALFORMED: { status: 401, meaning: "an Entra ID access token that is not an RS256 compact JWT with the expected claims" },
  RF_ERR_ENTRA_UNTRUSTED: { status: 401, meaning: "the token's issuer (iss) is not one the resource trusts" },
  RF_ERR_ENTRA_BAD_SIGNATURE: { status: 401, meaning: "the token's signature does not verify with the issuer's keys" },
  RF_ERR_ENTRA_NOT_YET_VALID: { status: 401, meaning: "the token's nbf is in the future" },
  RF_ERR_ENTRA_EXPIRED: { status: 401, meaning: "the token's exp is in the past" },
  RF_ERR_ENTRA_WRONG_AUDIENCE: { status: 401, meaning: "the token was issued for another resource (aud)" },
  RF_ERR_PREAMBLE_NAME: { meaning: "a logical-port name that is empty, > 255 UTF-8 bytes, or not UTF-8" },
  RF_ERR_PREAMBLE_VERSION: { meaning: "the peer's preamble is not version 1.0 (azbridge answers [0,0,0])" },
  RF_ERR_PREAMBLE_MODE: { meaning: "the preamble's mode byte is neither 0 (stream) nor 1 (datagram)" },
  RF_ERR_PREAMBLE_STATE: { meaning: "a preamble/reply parser was fed after it finished (programming error)" },
  RF_ERR_PREAMBLE_TIMEOUT: { meaning: "the sender's preamble or the listener's reply did not arrive in time" },
  RF_ERR_TUNNEL_REFUSED: { closeCode: "peer", meaning: "the listener answered the preamble with an error reply or closed (unknown port name)" },
  RF_ERR_RELAY_ENDPOINT: { meaning: "a relay endpoint or hybrid connection name that cannot form a URL" },
  RF_ERR_RELAY_CONTROL_MALFORMED: { closeCode: 1008, meaning: "a control-channel frame that is not valid JSON of a known shape (ignored, logged)" },
  RF_ERR_RELAY_NO_LISTENER: { status: 404, meaning: "sender: the relay answered 404, no listener is connected (or no such hybrid connection)" },
  RF_ERR_RELAY_UNAUTHORIZED: { status: 401, meaning: "sender/listener: the relay answered 401 (bad, expired or forged token)" },
  RF_ERR_RELAY_FORBIDDEN: { status: 403, meaning: "sender/listener: the relay answered 403 (token lacks the right, or too many listeners)" },
  RF_ERR_RELAY_REJECTED: { status: "peer", meaning: "sender: the listener rejected the connection; status is its code, message its description" },
  RF_ERR_RELAY_TIMEOUT: { status: "peer", meaning: "a relay handshake (connect, listen, rendezvous) did not finish in time" },
  RF_ERR_RELAY_UNREACHABLE: { meaning: "the relay could not be reached (DNS, refused, TLS, reset) or answered unexpectedly" },
  RF_ERR_RELAY_HTTP_STATUS: { status: "peer", meaning: "the relay answered the listen upgrade with another HTTP status (status carries it)" },
  RF_ERR_RELAY_CLOSED: { meaning: "the listener was closed while an operation (accept, reject) was under way" },
  RF_ERR_RELAY_ACCEPT_TWICE: { meaning: "accept()/reject() called twice on one accept request" },
  RF_ERR_PROXY_ADDRESS: { meaning: "a PROXY v2 header was asked for a non-IP address or an out-of-range port" },
  RF_ERR_PROXY_SIGNATURE: { meaning: "the stream does not start with the PROXY v2 signature" },
  RF_ERR_PROXY_VERSION: { meaning: "a PROXY header with a version other than 2" },
  RF_ERR_PROXY_COMMAND: { meaning: "a PROXY v2 header with a command other than LOCAL / PROXY" },
  RF_ERR_PROXY_TOO_LONG: { meaning: "a PROXY v2 header longer than the receiver allows" },
  RF_ERR_PROXY_TRUNCATED: { meaning: "a PROXY v2 header cut short (address block or whole header)" },
  RF_ERR_PROXY_STATE: { meaning: "bytes pushed to a PROXY parser that already finished" },
  RF_ERR_LEDGER_BAD_RANGE: { meaning: "a configured public port range cannot be parsed or is empty" },
  RF_ERR_LEDGER_RANGE_EXHAUSTED: { status: 503, meaning: "every port of the configured ranges is allocated" },
  RF_ERR_LEDGER_PORT_TAKEN: { status: 409, meaning: "a requested public port belongs to another mapping, or is a dedicated port asked to carry host routes" },
  RF_ERR_LEDGER_PORT_OUT_OF_RANGE: { status: 400, meaning: "a requested public port is outside the configured ranges" },
  RF_ERR_LEDGER_HOSTNAME_TAKEN: { status: 409, meaning: "a host name on a shared port is already routed to another mapping" },
  RF_ERR_LEDGER_BAD_COUNTER: { status: 500, meaning: "a counter row of the ledger (fleet-wide ordinals, e.g. hub reconnect phases) is unreadable or exhausted, or a take asked for a block outside 0 … 10,000; nothing was taken" },
  RF_ERR_LEDGER_CONTENDED: { status: 503, meaning: "a ledger counter changed under every attempt of a take (many writers at once); nothing was taken, retry" },
  RF_ERR_LEDGER_STORAGE_UNAVAILABLE: { status: 503, meaning: "the port ledger's Table storage cannot be reached or fails (answered within about a second; no change was made at that step)" },
  RF_ERR_RELAYADMIN_UNREACHABLE: { status: 502, meaning: "the relay emulator's admin API cannot be reached" },
  RF_ERR_RELAYADMIN_FAILED: { status: 502, meaning: "Azure Relay (ARM) or the emulator admin API refused or failed an operation" },
  RF_ERR_ROLLOUT_CONFIG: { status: 500, meaning: "the rollout service's configuration (relay, IoT Hub, ledger, profiles) is missing or invalid" },
  RF_ERR_GATEWAY_CIDR: { meaning: "a route's allowCidrs entry is not a CIDR or IP (row skipped)" },
  RF_ERR_GATEWAY_CONFIG: { meaning: "a gateway environment variable is missing or invalid" },
  RF_ERR_GATEWAY_NO_SEND_KEY: { meaning: "GATEWAY_RELAY_AUTH=sas but the site's ledger row has no Send rule (the rollout runs with Entra ID)" },
  RF_ERR_GATEWAY_FIRST_BYTES_TIMEOUT: { status: 408, meaning: "a client on a shared port named no host in time" },
  RF_ERR_GATEWAY_CLIENT_GONE: { meaning: "the client closed before its tunnel was set up" },
  RF_ERR_GATEWAY_UNKNOWN_PROTOCOL: { meaning: "first bytes on a shared port are neither TLS nor HTTP" },
  RF_ERR_SNI_NOT_TLS: { meaning: "the first byte is not a TLS handshake record" },
  RF_ERR_SNI_MALFORMED: { meaning: "a broken TLS record or ClientHello" },
  RF_ERR_SNI_TOO_LARGE: { meaning: "a ClientHello larger than the gateway reads (16 KiB)" },
  RF_ERR_SNI_STATE: { meaning: "bytes pushed to a ClientHello parser that already finished" },
  RF_ERR_HTTP_MALFORMED: { status: 400, meaning: "a bad HTTP/1.x request head" },
  RF_ERR_HTTP_TOO_LARGE: { status: 431, meaning: "an HTTP request head over 8 KiB" },
  RF_ERR_HTTP_STATE: { meaning: "bytes pushed to a request-head parser that already finished" },
  RF_ERR_ROLLOUT_INVALID: { status: 400, meaning: "an API body, CLI option, site id or mapping name failed validation, including reserved names such as constructor (issues has each field path and reason)" },
  RF_ERR_ROLLOUT_INVALID_TWIN: { status: 400, meaning: "the module twin rollout would write breaks the twin contract or the 32 KB limit" },
  RF_ERR_ROLLOUT_SITE_NOT_FOUND: { status: 404, meaning: "the named site does not exist" },
  RF_ERR_ROLLOUT_MAPPING_NOT_FOUND: { status: 404, meaning: "the site has no mapping of that name" },
  RF_ERR_ROLLOUT_MAPPING_EXISTS: { status: 409, meaning: "a mapping is added under a name the site already has (change it with PATCH / map update, replace it with PUT / map replace)" },
  RF_ERR_ROLLOUT_SITE_EXISTS: { status: 409, meaning: "a site is created again with different settings" },
  RF_ERR_ROLLOUT_DEVICE_NOT_FOUND: { status: 404, meaning: "the site has no device of that id" },
  RF_ERR_ROLLOUT_DEVICE_IN_OTHER_SITE: { status: 409, meaning: "a device asked to join a site (API, CLI, a new site's deviceIds, a DeviceCreated event) belongs to another site (nothing is written)" },
  RF_ERR_ROLLOUT_SITE_FULL: { status: 409, meaning: "a device would be a site's ninth: all devices of a site listen on its one hybrid connection, within Azure Relay's 25 listeners (nothing is written)" },
  RF_ERR_ROLLOUT_LAST_DEVICE: { status: 409, meaning: "removing a site's only device; remove the site instead" },
  RF_ERR_AUDIT_INVALID_QUERY: { status: 400, meaning: "GET /api/audit with a bad site, since (an ISO time or a span like 15m), limit (1-1000) or an unknown parameter (issues names each)" },
  RF_ERR_AUDIT_NOT_CONFIGURED: { status: 501, meaning: "the rollout service has no audit source to read (in Azure the records are in the device-audit storage container and the gateways' logs, docs/audit.md)" },
  RF_ERR_AUDIT_UNREADABLE: { status: 503, meaning: "every configured audit source failed (the message names each and why); one failing source is only reported in the answer's sources" },
  RF_ERR_ROLLOUT_UNKNOWN_PROFILE: { status: 400, meaning: "a site profile that is not configured" },
  RF_ERR_ROLLOUT_BAD_SPEC: { status: 500, meaning: "a site's stored spec in the ledger cannot be read" },
  RF_ERR_ROLLOUT_INCOMPLETE: { status: 409, meaning: "key rotation on a site whose rules or a device's module twin are missing" },
  RF_ERR_ROLLOUT_CHANGE_PENDING: { status: 503, meaning: "a site change is saved but a later step failed on a backend that is down (outcome: completed-by-reconcile); the next reconcile or the same request again finishes it" },
  RF_ERR_ROLLOUT_ROTATE_TIMEOUT: { status: 504, meaning: "the module did not report the new Listen key in time; the old key stays valid" },
  RF_ERR_ROLLOUT_IOTHUB: { status: 502, meaning: "IoT Hub refused or failed a registry / twin operation" },
  RF_ERR_ROLLOUT_IOTHUB_THROTTLED: { status: 503, meaning: "IoT Hub kept answering 429 (throttled) for longer than the rollout waits (2 min); retry later or add IoT Hub units" },
  RF_ERR_ROLLOUT_JOB_NOT_FOUND: { status: 404, meaning: "GET /api/onboarding-jobs/{id} names a job this rollout instance does not know (never submitted here, forgotten long after it finished, or the instance restarted)" },
  RF_ERR_ROLLOUT_RELAY_FULL: { status: 503, meaning: "no configured relay namespace (or not the one a site is moved to) has room for the site's connections within its fill limit; nothing is written: add a namespace" },
  RF_ERR_ROLLOUT_NAMESPACE_UNKNOWN: { status: 400, meaning: "sites move names a relay namespace the rollout is not configured with" },
  RF_ERR_ROLLOUT_UNAUTHORIZED: { status: 401, meaning: "the HTTP API request carries no valid function key" },
  RF_ERR_ROLLOUT_NOT_FOUND: { status: 404, meaning: "no API route or Event Grid function at that path" },
  RF_ERR_ROLLOUT_METHOD: { status: 405, meaning: "the route exists but not for that HTTP method" },
  RF_ERR_ROLLOUT_INTERNAL: { status: 500, meaning: "an unexpected failure while serving a request; details are logged, not returned" },
  RF_ERR_ROLLOUT_BODY_TOO_LARGE: { status: 413, meaning: "an HTTP request body over its route's limit (1 MiB; 32 MiB for an onboarding job)" },
  RF_ERR_IOTHUB_BAD_REQUEST: { status: 400, meaning: "IoT Hub emulator: invalid request, twin limit, bad key or malformed JSON (hub code ArgumentInvalid)" },
  RF_ERR_IOTHUB_METHOD: { status: 405, meaning: "IoT Hub emulator: the path exists but not for that HTTP method (hub code MethodNotAllowed)" },
  RF_ERR_IOTHUB_UNAUTHORIZED: { status: 401, meaning: "IoT Hub emulator: missing, bad, expired or misdirected SAS token (CONNACK 5 on MQTT)" },
  RF_ERR_IOTHUB_QUOTA: { status: 403, meaning: "IoT Hub emulator: a quota such as 50 modules per device is exhausted" },
  RF_ERR_IOTHUB_NOT_FOUND: { status: 404, meaning: "IoT Hub emulator: device, module, configuration or route not found" },
  RF_ERR_IOTHUB_DEVICE_NOT_ONLINE: { status: 404, meaning: "IoT Hub emulator: direct method target not connected / not subscribed (DeviceNotOnline)" },
  RF_ERR_IOTHUB_CONFLICT: { status: 409, meaning: "IoT Hub emulator: identity or configuration already exists" },
  RF_ERR_IOTHUB_PRECONDITION: { status: 412, meaning: "IoT Hub emulator: If-Match etag does not match" },
  RF_ERR_IOTHUB_TOO_LARGE: { status: 413, meaning: "IoT Hub emulator: request body over 1 MiB" },
  RF_ERR_IOTHUB_THROTTLED: { status: 429, meaning: "IoT Hub emulator: query budget per minute exceeded (ThrottlingException)" },
  RF_ERR_IOTHUB_INTERNAL: { status: 500, meaning: "IoT Hub emulator: unexpected failure while serving a request" },
  RF_ERR_IOTHUB_TIMEOUT: { status: 504, meaning: "IoT Hub emulator: direct method not answered in time (GatewayTimeout)" },
  RF_ERR_IOTHUB_STATE_FILE: { meaning: "IoT Hub emulator: the state file cannot be read or has an unknown format" },
  RF_ERR_IOTHUB_CONNECTION_STRING: { meaning: "an IoT Hub service connection string (or IOTHUB_* environment) is missing or incomplete" },
  RF_ERR_ALLOWLIST_ENTRY: { meaning: "relayListener: an entry of the device allowlist file (RELAY_ALLOWLIST_FILE, default /etc/relay-listener/allowlist.txt) that is not a CIDR, address, host name or port list (module refuses to start)" },
  RF_ERR_MODULE_SETTING: { meaning: "relayListener: an environment setting out of range or a file it names cannot be read (module refuses to start)" },
  RF_ERR_MODULE_IOTHUB_TIMEOUT: { meaning: "relayListener: an IoT Hub SDK call (open, twin read, reported-properties update, method response) got no answer in time; the client is re-opened" },
  RF_ERR_MODULE_HEADER: { meaning: "relayListener: a relayed connection whose preamble or PROXY v2 header did not arrive complete in time (connection closed)" },
  RF_ERR_CLI_DISCOVERY: { meaning: "the CLI finds no rollout target, or the simulation discovery file is unreadable" },
  RF_ERR_CLI_UNREACHABLE: { meaning: "the rollout API the CLI targets does not answer" },
  RF_ERR_CLI_BAD_CSV: { meaning: "relay-fleet sites add --from-file: the file cannot be read or has bad rows (each named with its line and reason); nothing is submitted" },
  RF_ERR_CLI_SITES_FAILED: { meaning: "an onboarding job finished with sites that failed (each listed with its reason); the others are onboarded (exit 1)" },
  RF_ERR_CLI_API: { status: "peer", meaning: "the rollout API answered an error without a code" },
  RF_ERR_CLI_USAGE: { meaning: "the command line cannot be parsed: unknown command or option, missing argument, bad option value, contradicting options (exit 2)" },
  RF_ERR_CLI_FAILED: { meaning: "a CLI command failed with an error that carries no code of its own (exit 1)" },
  RF_ERR_DEPLOYMENT: { meaning: "relay-fleet deployment apply: a fleet deployment with that id exists with other content (IoT Hub deployments are immutable: bump the version), or module.json is missing" },
  RF_ERR_RELAYEMU_INVALID: { status: 400, meaning: "relay emulator admin: an invalid hybrid connection name, rule name, right or key" },
  RF_ERR_RELAYEMU_QUOTA_EXCEEDED: { status: 403, meaning: "relay emulator admin: creating a hybrid connection past the namespace quota (maxHybridConnectionsPerNamespace, 10,000 by default)" },
  RF_ERR_RELAYEMU_NOT_FOUND: { status: 404, meaning: "relay emulator admin: a rule operation on a hybrid connection that does not exist" },
  RF_ERR_RELAYEMU_STATE: { meaning: "relay emulator: the --state-file exists but is not a valid saved namespace" },
  RF_ERR_IDENTITYEMU_INVALID: { status: 400, meaning: "identity emulator admin: a request body that is not JSON or fails validation (each field named)" },
  RF_ERR_IDENTITYEMU_TOO_LARGE: { status: 413, meaning: "identity emulator admin: a request body over 16 KiB" },
  RF_ERR_IDENTITYEMU_NOT_FOUND: { status: 404, meaning: "identity emulator: no identity of that name" },
} as const satisfies Record<`RF_ERR_${string}`, ErrorCodeInfo>;

/** Every error code there is. */
export type ErrorCode = keyof typeof ERROR_CODES;

type Table = typeof ERROR_CODES;
/** Codes whose HTTP status is what a peer answered: the call site passes `status`. */
export type PeerStatusCode = { [K in ErrorCode]: Table[K] extends { status: "peer" } ? K : never }[ErrorCode];
/** Codes whose close code is the peer's: the call site passes `closeCode`. */
export type PeerCloseCode = {
  [K in ErrorCode]: Table[K] extends { closeCode: "peer" } ? K : never;
}[ErrorCode];

/** Options of one error: a cause, and the peer's status or close code where the code takes one. */
export type ErrorOptions<C extends ErrorCode = ErrorCode> = { cause?: unknown } & (C extends PeerStatusCode
  ? { status?: number }
  : { status?: never }) &
  (C extends PeerCloseCode ? { closeCode?: number } : { closeCode?: never });

/** True for a string that is one of the table's codes (a code read from the network, say). */
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && Object.hasOwn(ERROR_CODES, value);
}

/** The HTTP status `code` answers with, if it has a fixed one. */
export function statusOf(code: ErrorCode): number | undefined {
  const info: ErrorCodeInfo = ERROR_CODES[code];
  return typeof info.status === "number" ? info.status : undefined;
}

export class RelayFleetError<C extends ErrorCode = ErrorCode> extends Error {
  /** Stable machine-readable code, never reused for another meaning. */
  readonly code: C;
  /** HTTP status to answer with, when the error is raised while serving a request. */
  readonly status?: number;
  /** WebSocket close code to close with, when the error is raised on a WebSocket. */
  readonly closeCode?: number;

  constructor(code: C, message: string, options: ErrorOptions<C> = {} as ErrorOptions<C>) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "RelayFleetError";
    this.code = code;
    const info: ErrorCodeInfo = ERROR_CODES[code];
    const status = typeof info.status === "number" ? info.status : options.status;
    const closeCode = typeof info.closeCode === "number" ? info.closeCode : options.closeCode;
    if (status !== undefined) this.status = status;
    if (closeCode !== undefined) this.closeCode = closeCode;
  }
}

/** True when `err` carries the given code, whatever copy of this module created it. */
export function hasErrorCode(err: unknown, code: ErrorCode): boolean {
  return typeof err === "object" && err !== null && (err as { code?: unknown }).code === code;
}

/** Message of any thrown value, for logs and reported properties. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
