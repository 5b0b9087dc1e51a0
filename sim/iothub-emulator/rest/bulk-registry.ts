/**
 * `POST /devices`: IoT Hub's bulk registry operation (azure-iothub's `addDevices`,
 * `updateDevices`, `removeDevices`): up to 100 device identities created, updated or deleted in one
 * call, each on its own (one device's failure does not undo another's). The answer is a
 * BulkRegistryOperationResult: 200 when every device succeeded, 400 with each failure otherwise.
 *
 * Throttling: Microsoft's quota page does not say how a bulk call counts against the identity
 * registry throttle. The emulator counts one registry operation per device in the call (the
 * stricter reading) and refuses the call whole (429, nothing done) when they do not all fit: a
 * bulk call saves round trips, not registry budget.
 */
import { z } from "zod";
import { HubError } from "../errors.ts";
import type { Json, JsonObject } from "../state/json.ts";
import { type Route, route } from "./router.ts";

/** Most devices one bulk call may name (IoT Hub's and the SDK's limit). */
export const MAX_BULK_DEVICES = 100;

const importModes = {
  create: "create",
  update: "update",
  updateifmatchetag: "updateIfMatchETag",
  delete: "delete",
  deleteifmatchetag: "deleteIfMatchETag",
} as const;

const exportImportDeviceSchema = z
  .object({
    id: z.string().min(1),
    // The SDK sends `create`, `Update`, `UpdateIfMatchETag`, `Delete`, `DeleteIfMatchETag`.
    importMode: z
      .string()
      .transform((m) => importModes[m.toLowerCase() as keyof typeof importModes])
      .refine(
        (m) => m !== undefined,
        "must be create, update, updateIfMatchETag, delete or deleteIfMatchETag",
      ),
    eTag: z.string().optional(),
    status: z.enum(["enabled", "disabled"]).optional(),
    statusReason: z.string().optional(),
    capabilities: z.object({ iotEdge: z.boolean().optional() }).passthrough().optional(),
    authentication: z.record(z.string(), z.unknown()).optional(),
  })
  // Twin fields (tags, properties) in a bulk call are not emulated: refused, never dropped.
  .strict();

const bulkBodySchema = z
  .array(exportImportDeviceSchema)
  .min(1, "name at least one device")
  .max(MAX_BULK_DEVICES, `at most ${MAX_BULK_DEVICES} devices per call`)
  .refine((devices) => new Set(devices.map((d) => d.id)).size === devices.length, {
    message: "a device may be named only once per call",
  });

interface OperationError {
  deviceId: string;
  errorCode: string;
  errorStatus: string;
}

export const bulkRegistryRoutes: Route[] = [
  route("POST", "/devices", (ctx, req) => {
    const parsed = bulkBodySchema.safeParse(req.body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const at = issue?.path.length ? `[${issue.path.join(".")}] ` : "";
      throw new HubError("ArgumentInvalid", `bulk registry body: ${at}${issue?.message ?? "invalid"}`);
    }
    const devices = parsed.data;
    // Checked whole before anything is done: a throttled call changes nothing.
    ctx.quotas.take("registry", devices.length);
    const errors: OperationError[] = [];
    for (const d of devices) {
      try {
        const body: JsonObject = {
          deviceId: d.id,
          ...(d.status !== undefined ? { status: d.status } : {}),
          ...(d.capabilities !== undefined ? { capabilities: d.capabilities as JsonObject } : {}),
          ...(d.authentication !== undefined ? { authentication: d.authentication as JsonObject } : {}),
        };
        const ifMatch = d.importMode.endsWith("IfMatchETag") ? d.eTag : "*";
        if (ifMatch === undefined || ifMatch === "")
          throw new HubError("ArgumentInvalid", `${d.importMode} needs the device's eTag`);
        if (d.importMode === "create") ctx.hub.putDevice(d.id, body);
        else if (d.importMode.startsWith("update")) ctx.hub.putDevice(d.id, body, ifMatch);
        else ctx.hub.deleteDevice(d.id, ifMatch);
      } catch (err) {
        if (!(err instanceof HubError)) throw err;
        errors.push({ deviceId: d.id, errorCode: err.hubCode, errorStatus: err.message });
      }
    }
    const result = { isSuccessful: errors.length === 0, errors, warnings: [] } as unknown as Json;
    return { status: errors.length === 0 ? 200 : 400, body: result };
  }),
];
