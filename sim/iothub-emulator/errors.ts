/**
 * Errors the emulated hub answers with. Each carries the HTTP status and the IoT Hub error code
 * (`DeviceNotFound`, `PreconditionFailed`, …) because the service SDK maps its error classes from
 * the pair, and the MQTT side turns the same error into a twin response `{errorCode, message}`.
 */
import { RelayFleetError } from "../../lib/errors.ts";

/** IoT Hub error codes the emulator emits, with their status and numeric code (MQTT bodies). */
export const HUB_ERRORS = {
  ArgumentInvalid: { status: 400, numeric: 400004, rf: "RF_ERR_IOTHUB_BAD_REQUEST" },
  IotHubUnauthorizedAccess: { status: 401, numeric: 401002, rf: "RF_ERR_IOTHUB_UNAUTHORIZED" },
  IotHubQuotaExceeded: { status: 403, numeric: 403002, rf: "RF_ERR_IOTHUB_QUOTA" },
  DeviceNotFound: { status: 404, numeric: 404001, rf: "RF_ERR_IOTHUB_NOT_FOUND" },
  ModuleNotFound: { status: 404, numeric: 404010, rf: "RF_ERR_IOTHUB_NOT_FOUND" },
  ConfigurationNotFound: { status: 404, numeric: 404011, rf: "RF_ERR_IOTHUB_NOT_FOUND" },
  DeviceNotOnline: { status: 404, numeric: 404103, rf: "RF_ERR_IOTHUB_DEVICE_NOT_ONLINE" },
  NotFound: { status: 404, numeric: 404000, rf: "RF_ERR_IOTHUB_NOT_FOUND" },
  MethodNotAllowed: { status: 405, numeric: 405000, rf: "RF_ERR_IOTHUB_METHOD" },
  DeviceAlreadyExists: { status: 409, numeric: 409001, rf: "RF_ERR_IOTHUB_CONFLICT" },
  ModuleAlreadyExistsOnDevice: { status: 409, numeric: 409301, rf: "RF_ERR_IOTHUB_CONFLICT" },
  ConfigurationAlreadyExists: { status: 409, numeric: 409005, rf: "RF_ERR_IOTHUB_CONFLICT" },
  PreconditionFailed: { status: 412, numeric: 412002, rf: "RF_ERR_IOTHUB_PRECONDITION" },
  RequestEntityTooLarge: { status: 413, numeric: 413001, rf: "RF_ERR_IOTHUB_TOO_LARGE" },
  ThrottlingException: { status: 429, numeric: 429001, rf: "RF_ERR_IOTHUB_THROTTLED" },
  ServerError: { status: 500, numeric: 500001, rf: "RF_ERR_IOTHUB_INTERNAL" },
  GatewayTimeout: { status: 504, numeric: 504101, rf: "RF_ERR_IOTHUB_TIMEOUT" },
} as const;

export type HubErrorCode = keyof typeof HUB_ERRORS;

/** An error the hub reports to a client; `hubCode` is IoT Hub's own error code name. */
export class HubError extends RelayFleetError {
  readonly hubCode: HubErrorCode;
  readonly numericCode: number;
  /** For 429: seconds until the request would fit its throttle (sent as `Retry-After`). */
  retryAfterSeconds?: number;

  constructor(hubCode: HubErrorCode, message: string) {
    const spec = HUB_ERRORS[hubCode];
    super(spec.rf, message);
    this.name = "HubError";
    this.hubCode = hubCode;
    this.numericCode = spec.numeric;
  }
}

/** Shorthands for the errors raised most often. */
export const hubErrors = {
  badRequest: (message: string) => new HubError("ArgumentInvalid", message),
  deviceNotFound: (deviceId: string) =>
    new HubError("DeviceNotFound", `Device ${deviceId} is not registered in this hub`),
  moduleNotFound: (deviceId: string, moduleId: string) =>
    new HubError("ModuleNotFound", `Module ${moduleId} on device ${deviceId} is not registered`),
  precondition: (what: string) =>
    new HubError("PreconditionFailed", `Precondition failed: the etag of ${what} does not match`),
};
