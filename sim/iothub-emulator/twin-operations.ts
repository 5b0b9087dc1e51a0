/**
 * Twin operations of the hub: reads, the service's `PATCH`/`PUT` of tags and desired properties,
 * configurations' wholesale desired, and the device's reported patches. Each works on a copy of
 * the twin and commits at the end; desired changes are announced (`desired`) for connected
 * clients, tag changes for configurations (`deviceTargetingChanged`).
 */
import { hubErrors } from "./errors.ts";
import { etagMatches, type HubCore, requireObject } from "./hub-core.ts";
import { type DeviceRecord, type ModuleRecord, renderTwin } from "./state/identities.ts";
import { isJsonObject, type JsonObject } from "./state/json.ts";
import {
  patchSection,
  replaceDesired,
  stripReadOnly,
  type TwinDoc,
  twinEtag,
  updateTags,
} from "./state/twin-doc.ts";

function twinOwner(
  hub: HubCore,
  deviceId: string,
  moduleId?: string,
): { dev: DeviceRecord; rec: DeviceRecord | ModuleRecord } {
  const dev = hub.device(deviceId);
  return { dev, rec: moduleId === undefined ? dev : hub.module(deviceId, moduleId) };
}

export function getTwin(hub: HubCore, deviceId: string, moduleId?: string): JsonObject {
  const { dev } = twinOwner(hub, deviceId, moduleId);
  return renderTwin(dev, moduleId === undefined ? undefined : hub.module(deviceId, moduleId));
}

/**
 * `PATCH` (merge) or `PUT` (replace) of a twin from the service: tags and desired only.
 * Desired changes are pushed to a connected client as a patch with `$version`.
 */
export function updateTwin(
  hub: HubCore,
  deviceId: string,
  moduleId: string | undefined,
  bodyIn: unknown,
  ifMatch: string | undefined,
  mode: "patch" | "replace",
): JsonObject {
  const { dev, rec } = twinOwner(hub, deviceId, moduleId);
  const body = requireObject(bodyIn, "twin");
  if (!etagMatches(ifMatch, twinEtag(rec.twin)))
    throw hubErrors.precondition(`the twin of ${moduleId ? `${deviceId}/${moduleId}` : deviceId}`);
  const draft: TwinDoc = structuredClone(rec.twin);
  let tagsChanged = false;
  let desiredPatch: JsonObject = {};
  const tags = body.tags;
  if (tags !== undefined && tags !== null) {
    tagsChanged = updateTags(draft, requireObject(tags, "tags"), mode === "replace");
  } else if (mode === "replace") {
    tagsChanged = updateTags(draft, {}, true);
  }
  const props = body.properties;
  if (props !== undefined && props !== null) {
    const p = requireObject(props, "properties");
    const reported = p.reported;
    if (
      reported !== undefined &&
      reported !== null &&
      (!isJsonObject(reported) || Object.keys(stripReadOnly(reported)).length > 0)
    )
      throw hubErrors.badRequest("reported properties can only be written by the device or module");
    const desired = p.desired;
    if (desired !== undefined && desired !== null) {
      const d = stripReadOnly(requireObject(desired, "properties.desired"));
      desiredPatch = mode === "replace" ? replaceDesired(draft, d) : patchSection(draft, "desired", d);
    } else if (mode === "replace") {
      desiredPatch = replaceDesired(draft, {});
    }
  } else if (mode === "replace") {
    desiredPatch = replaceDesired(draft, {});
  }
  rec.twin = draft;
  hub.commit();
  if (Object.keys(desiredPatch).length > 0) {
    hub.emit("desired", {
      deviceId,
      ...(moduleId === undefined ? {} : { moduleId }),
      patch: desiredPatch,
      version: draft.desiredVersion,
    });
  }
  if (tagsChanged && moduleId === undefined) hub.emit("deviceTargetingChanged", deviceId);
  return renderTwin(dev, moduleId === undefined ? undefined : hub.module(deviceId, moduleId));
}

/** Replaces a module's (or device's) desired properties wholesale: configurations use hub. */
export function setDesired(
  hub: HubCore,
  deviceId: string,
  moduleId: string | undefined,
  desired: JsonObject,
): void {
  const { rec } = twinOwner(hub, deviceId, moduleId);
  const draft = structuredClone(rec.twin);
  const patch = replaceDesired(draft, desired);
  if (Object.keys(patch).length === 0) return;
  rec.twin = draft;
  hub.commit();
  hub.emit("desired", {
    deviceId,
    ...(moduleId === undefined ? {} : { moduleId }),
    patch,
    version: draft.desiredVersion,
  });
}

/** A reported-properties patch from the device or module (MQTT). Returns the new `$version`. */
export function reportProperties(
  hub: HubCore,
  deviceId: string,
  moduleId: string | undefined,
  patchIn: unknown,
): number {
  const { rec } = twinOwner(hub, deviceId, moduleId);
  const patch = requireObject(patchIn, "reported properties patch");
  const draft = structuredClone(rec.twin);
  patchSection(draft, "reported", patch);
  rec.twin = draft;
  rec.lastActivityTime = new Date().toISOString();
  hub.commit();
  return draft.reportedVersion;
}

/** The `{desired, reported}` body of an MQTT twin GET (no `$metadata`, like the hub). */
export function twinProperties(hub: HubCore, deviceId: string, moduleId?: string): JsonObject {
  const { rec } = twinOwner(hub, deviceId, moduleId);
  return {
    desired: { ...rec.twin.desired, $version: rec.twin.desiredVersion },
    reported: { ...rec.twin.reported, $version: rec.twin.reportedVersion },
  };
}

/** Records a client's connect or disconnect on its identity (shown in the device and module). */
export function setConnectionState(
  hub: HubCore,
  deviceId: string,
  moduleId: string | undefined,
  connected: boolean,
): void {
  const dev = hub.store.devices.get(deviceId);
  const rec = dev && (moduleId === undefined ? dev : dev.modules[moduleId]);
  if (!rec) return;
  const now = new Date().toISOString();
  rec.connectionState = connected ? "Connected" : "Disconnected";
  rec.connectionStateUpdatedTime = now;
  rec.lastActivityTime = now;
}
