/**
 * Service-side IoT Hub clients (azure-iothub `Registry` and `Client`) that reach a hub on any port
 * with a private CA, through the SDKs' public constructor injection: `new Registry(config,
 * restApiClient)` / `new Client(transport, restApiClient)` with a `RestApiClient` whose HTTP
 * request builder adds the port and CA. With port 443 and no CA this is exactly what
 * `Registry.fromConnectionString` builds, so the same code serves Azure and the emulator.
 *
 * Errors keep the SDK's classes' `.name` (`DeviceNotFoundError`, `InvalidEtagError`, …) and
 * `err.response.statusCode`; match on those, never on `instanceof` (azure-iot-http-base and
 * azure-iothub each carry their own copies of the error classes).
 */
import { readFileSync } from "node:fs";
import type { TokenCredential } from "@azure/identity";
import httpBase from "azure-iot-http-base";
import iothub, { type Client, type Registry } from "azure-iothub";
import { z } from "zod";
import { documented, envOptionalInt, envText, parseEnv } from "../env.ts";
import { RelayFleetError } from "../errors.ts";
import { parseServiceConnectionString } from "./iothub-connection-string.ts";

// CommonJS packages: Node's ESM loader cannot see their named exports, so take the namespace.
const { Http, RestApiClient } = httpBase;
const { Amqp, Client: ClientCtor, Registry: RegistryCtor, SharedAccessSignature } = iothub;
type Http = InstanceType<typeof Http>;

export { parseServiceConnectionString } from "./iothub-connection-string.ts";

export interface IotHubServiceOptions {
  /** HTTPS port of the hub's REST API (default 443). */
  restPort?: number;
  /** PEM text (or several) of extra CAs to trust, e.g. the emulator's. */
  ca?: string | Buffer;
}

export interface IotHubServiceClients {
  registry: Registry;
  client: Client;
  /** The hub's host name, from the connection string. */
  hostName: string;
}

type BuildRequest = Http["buildRequest"];
type BuildArgs = Parameters<BuildRequest>;

/**
 * `Http` with a fixed port and CA. The SDK passes a port only through per-request options, and
 * `Registry`/`Client` replace the builder's options with `{http:{agent}}` right after
 * construction, so the CA is re-added on every `setOptions`.
 */
class TargetedHttp extends Http {
  private readonly port: number | undefined;
  private readonly ca: string | Buffer | undefined;

  constructor(port: number | undefined, ca: string | Buffer | undefined) {
    super();
    this.port = port;
    this.ca = ca;
    this.setOptions({});
  }

  override setOptions(options: Parameters<Http["setOptions"]>[0]): void {
    super.setOptions(this.ca === undefined ? options : { ...(options as object), ca: this.ca });
  }

  override buildRequest(...args: BuildArgs): ReturnType<BuildRequest> {
    const [method, path, headers, host, options, done] = args as unknown as [
      BuildArgs[0],
      BuildArgs[1],
      BuildArgs[2],
      BuildArgs[3],
      unknown,
      unknown,
    ];
    if (this.port === undefined || typeof host !== "string") return super.buildRequest(...args);
    const callback = (typeof options === "function" ? options : done) as BuildArgs[5];
    const given = typeof options === "function" || options === undefined ? {} : (options as object);
    // x509 options and request options are exclusive in buildRequest; the emulator and SAS
    // callers never pass x509, so only plain request options get the port.
    const isX509 = "cert" in given || "key" in given || "certFile" in given;
    const requestOptions = isX509 ? given : { ...given, port: this.port };
    return (super.buildRequest as (...a: unknown[]) => ReturnType<BuildRequest>)(
      method,
      path,
      headers,
      host,
      requestOptions,
      callback,
    );
  }
}

const USER_AGENT = "relay-fleet-iothub-service";

/** Scope of Entra ID tokens for IoT Hub's service API (resource `https://iothubs.azure.net`). */
export const IOTHUB_TOKEN_SCOPE = "https://iothubs.azure.net/.default";

type ServiceConfig =
  | { host: string; keyName: string; sharedAccessSignature: unknown }
  | { host: string; tokenCredential: TokenCredential; tokenScope: string };

/** Registry + Client over one config maker; the REST clients get the port- and CA-aware builder. */
function buildClients(
  hostName: string,
  makeConfig: () => ServiceConfig,
  options: IotHubServiceOptions,
): IotHubServiceClients {
  const port = options.restPort === undefined || options.restPort === 443 ? undefined : options.restPort;
  if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65535))
    throw new RelayFleetError("RF_ERR_IOTHUB_CONNECTION_STRING", `invalid IoT Hub REST port ${port}`);
  const restClient = (config: ServiceConfig) =>
    new RestApiClient(
      config as unknown as ConstructorParameters<typeof RestApiClient>[0],
      USER_AGENT,
      new TargetedHttp(port, options.ca),
    );
  const registryConfig = makeConfig();
  const registry = new RegistryCtor(
    registryConfig as unknown as ConstructorParameters<typeof RegistryCtor>[0],
    restClient(registryConfig) as unknown as ConstructorParameters<typeof RegistryCtor>[1],
  );
  const clientConfig = makeConfig();
  // The AMQP transport is only used by Client.open()/send(); invokeDeviceMethod goes over REST.
  const client = new ClientCtor(
    new Amqp(clientConfig as unknown as ConstructorParameters<typeof Amqp>[0]),
    restClient(clientConfig) as unknown as ConstructorParameters<typeof ClientCtor>[1],
  );
  return { registry, client, hostName };
}

/**
 * Creates a `Registry` and a `Client` for the hub `hostName` that sign in with an Entra ID
 * credential (a managed identity holding IoT Hub data-plane roles) instead of a shared access
 * policy, as `Registry.fromTokenCredential` does, on any port and CA like the function below.
 */
export function createIotHubServiceClientsWithCredential(
  hostName: string,
  credential: TokenCredential,
  options: IotHubServiceOptions = {},
): IotHubServiceClients {
  if (!/^[A-Za-z0-9.-]+$/.test(hostName))
    throw new RelayFleetError(
      "RF_ERR_IOTHUB_CONNECTION_STRING",
      `invalid IoT Hub host name '${hostName.slice(0, 80)}'`,
    );
  return buildClients(
    hostName,
    () => ({ host: hostName, tokenCredential: credential, tokenScope: IOTHUB_TOKEN_SCOPE }),
    options,
  );
}

/**
 * Creates a `Registry` and a `Client` for the hub in `connectionString`, optionally on another
 * port and trusting an extra CA. Throws `RF_ERR_IOTHUB_CONNECTION_STRING` on a bad string.
 */
export function createIotHubServiceClients(
  connectionString: string,
  options: IotHubServiceOptions = {},
): IotHubServiceClients {
  const cs = parseServiceConnectionString(connectionString);
  return buildClients(
    cs.hostName,
    () => ({
      host: cs.hostName,
      keyName: cs.sharedAccessKeyName,
      // A SharedAccessSignature object: the REST client extends it before every request.
      sharedAccessSignature: SharedAccessSignature.create(
        cs.hostName,
        cs.sharedAccessKeyName,
        cs.sharedAccessKey,
        Math.floor(Date.now() / 1000) + 3600,
      ),
    }),
    options,
  );
}

/** The variables a service process reads to reach IoT Hub by connection string (the CLI's `deployment`). */
export const iothubServiceEnvSchema = z.object({
  IOTHUB_CONNECTION_STRING: documented(envText(), {
    description: "IoT Hub service connection string (required)",
  }),
  IOTHUB_REST_PORT: documented(envOptionalInt(1, 65535), {
    description: "HTTPS port of the hub's REST API when it is not 443 (the IoT Hub emulator)",
  }),
  IOTHUB_CA_FILE: documented(envText(), {
    description: "PEM file of an extra CA to trust for IoT Hub (the emulator's)",
  }),
});

/**
 * Reads `IOTHUB_CONNECTION_STRING`, `IOTHUB_REST_PORT` (optional) and `IOTHUB_CA_FILE`
 * (optional) through {@link iothubServiceEnvSchema} and creates the clients. Throws
 * `RF_ERR_IOTHUB_CONNECTION_STRING` when unset or when a variable is bad (named).
 */
export function iothubServiceClientsFromEnv(env: NodeJS.ProcessEnv = process.env): IotHubServiceClients {
  const settings = parseEnv(iothubServiceEnvSchema, env, "RF_ERR_IOTHUB_CONNECTION_STRING", "IoT Hub: ");
  const cs = settings.IOTHUB_CONNECTION_STRING;
  if (!cs)
    throw new RelayFleetError("RF_ERR_IOTHUB_CONNECTION_STRING", "IOTHUB_CONNECTION_STRING is not set");
  const options: IotHubServiceOptions = {};
  if (settings.IOTHUB_REST_PORT !== undefined) options.restPort = settings.IOTHUB_REST_PORT;
  if (settings.IOTHUB_CA_FILE) options.ca = readFileSync(settings.IOTHUB_CA_FILE);
  return createIotHubServiceClients(cs, options);
}

/** Short name of {@link iothubServiceClientsFromEnv}, for callers inside lib/azure's own tests. */
export const fromEnv = iothubServiceClientsFromEnv;
