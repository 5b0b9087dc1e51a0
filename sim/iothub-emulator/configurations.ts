/**
 * Configurations (IoT Edge deployments and automatic device configurations): CRUD with etags, and
 * their application. A configuration's `targetCondition` is evaluated against device twins; for
 * each matching edge device the highest-priority `properties.desired` of each module wins, then
 * layered `properties.desired.<path>` entries apply in priority order. The real hub does this
 * asynchronously within minutes; the emulator does it at once, and only when the set of matching
 * configurations (ids + etags) changed, so desired properties written by the service in between
 * are not overwritten on every twin change.
 */
import { HubError, hubErrors } from "./errors.ts";
import { etagMatches, type Hub } from "./hub.ts";
import { evaluate } from "./query/evaluate.ts";
import { parseCondition } from "./query/parse.ts";
import { type DeviceRecord, identityEtag, renderTwin } from "./state/identities.ts";
import { isJsonObject, type JsonObject } from "./state/json.ts";
import { checkId } from "./state/limits.ts";
import type { ConfigurationRecord } from "./state/store.ts";

const DESIRED = "properties.desired";

function render(rec: ConfigurationRecord, targeted: number, applied: number): JsonObject {
  return {
    id: rec.id,
    schemaVersion: rec.schemaVersion,
    labels: rec.labels,
    content: rec.content,
    contentType: "assignment",
    targetCondition: rec.targetCondition,
    createdTimeUtc: rec.createdTimeUtc,
    lastUpdatedTimeUtc: rec.lastUpdatedTimeUtc,
    priority: rec.priority,
    systemMetrics: {
      results: { targetedCount: targeted, appliedCount: applied },
      queries: {},
    },
    metrics: { results: {}, queries: isJsonObject(rec.metrics.queries) ? rec.metrics.queries : {} },
    etag: identityEtag(rec.etagCounter),
  };
}

/** Sets `value` at a dotted path inside `obj` (creating objects on the way). */
function setPath(obj: JsonObject, path: string[], value: JsonObject[string]): void {
  let cur = obj;
  for (const seg of path.slice(0, -1)) {
    const next = cur[seg];
    cur = cur[seg] = isJsonObject(next) ? { ...next } : {};
  }
  cur[path[path.length - 1]!] = value;
}

const SYSTEM_MODULES = new Set(["$edgeAgent", "$edgeHub"]);

/**
 * A base (standard) IoT Edge deployment sets `$edgeAgent`'s whole `properties.desired`; a layered
 * one only sets `properties.desired.<path>` entries on top of a base.
 */
export function isBaseDeployment(c: ConfigurationRecord): boolean {
  const mc = c.content.modulesContent;
  return isJsonObject(mc) && isJsonObject(mc.$edgeAgent) && isJsonObject(mc.$edgeAgent[DESIRED]);
}

/**
 * What IoT Hub applies to an edge device out of the deployments it matches: the base deployment
 * of the highest priority (on a tie, the one created last) wholesale, then every layered one in
 * ascending priority. Other base deployments are only "targeted".
 */
export function chooseDeployments(configs: ConfigurationRecord[]): {
  base: ConfigurationRecord | undefined;
  layers: ConfigurationRecord[];
} {
  const sorted = [...configs].sort(byPriority);
  const bases = sorted.filter(isBaseDeployment);
  return { base: bases[bases.length - 1], layers: sorted.filter((c) => !isBaseDeployment(c)) };
}

/** Merges the module desired properties of the chosen deployments into one object per module. */
export function composeModulesContent(configs: ConfigurationRecord[]): Map<string, JsonObject> {
  const out = new Map<string, JsonObject>();
  const { base, layers } = chooseDeployments(configs);
  const entries = (c: ConfigurationRecord): Array<[string, JsonObject]> => {
    const mc = c.content.modulesContent;
    return isJsonObject(mc)
      ? Object.entries(mc).filter((e): e is [string, JsonObject] => isJsonObject(e[1]))
      : [];
  };
  // The base deployment's content wholesale.
  if (base)
    for (const [moduleId, entry] of entries(base))
      if (isJsonObject(entry[DESIRED])) out.set(moduleId, structuredClone(entry[DESIRED]));
  // Layers in priority order: a module twin's whole desired properties (not the runtime's), then
  // `properties.desired.<path>` entries on top.
  for (const c of layers) {
    for (const [moduleId, entry] of entries(c)) {
      const whole = entry[DESIRED];
      if (isJsonObject(whole) && !SYSTEM_MODULES.has(moduleId)) out.set(moduleId, structuredClone(whole));
      for (const [key, value] of Object.entries(entry)) {
        if (!key.startsWith(`${DESIRED}.`)) continue;
        const desired = out.get(moduleId) ?? {};
        setPath(desired, key.slice(DESIRED.length + 1).split("."), structuredClone(value));
        out.set(moduleId, desired);
      }
    }
  }
  return out;
}

function byPriority(a: ConfigurationRecord, b: ConfigurationRecord): number {
  return a.priority - b.priority || a.createdTimeUtc.localeCompare(b.createdTimeUtc);
}

export class ConfigurationService {
  private readonly hub: Hub;

  constructor(hub: Hub) {
    this.hub = hub;
    hub.on("deviceTargetingChanged", (deviceId) => {
      const dev = hub.store.devices.get(deviceId);
      if (dev) this.applyToDevice(dev);
    });
  }

  private get records(): Map<string, ConfigurationRecord> {
    return this.hub.store.configurations;
  }

  private metrics(rec: ConfigurationRecord): { targeted: number; applied: number } {
    let targeted = 0;
    let applied = 0;
    const cond = parseCondition(rec.targetCondition);
    for (const dev of this.hub.store.devices.values()) {
      if (!evaluate(cond, renderTwin(dev, undefined, false))) continue;
      targeted++;
      if (dev.configurations?.[rec.id]?.status === "applied") applied++;
    }
    return { targeted, applied };
  }

  get(id: string): JsonObject {
    const rec = this.records.get(id);
    if (!rec) throw new HubError("ConfigurationNotFound", `Configuration ${id} not found`);
    const m = this.metrics(rec);
    return render(rec, m.targeted, m.applied);
  }

  list(): JsonObject[] {
    return [...this.records.keys()].map((id) => this.get(id));
  }

  put(id: string, bodyIn: unknown, ifMatch?: string): JsonObject {
    checkId(id, "configurationId");
    if (!isJsonObject(bodyIn)) throw hubErrors.badRequest("configuration must be a JSON object");
    const body = bodyIn;
    if (body.id !== undefined && body.id !== id)
      throw hubErrors.badRequest("id in the body does not match the URL");
    const content = body.content ?? {};
    if (!isJsonObject(content)) throw hubErrors.badRequest("content must be an object");
    for (const k of ["modulesContent", "moduleContent", "deviceContent"]) {
      if (content[k] !== undefined && !isJsonObject(content[k]))
        throw hubErrors.badRequest(`content.${k} must be an object`);
    }
    const targetCondition = body.targetCondition ?? "";
    if (typeof targetCondition !== "string") throw hubErrors.badRequest("targetCondition must be a string");
    parseCondition(targetCondition); // 400 on a bad condition, before anything is stored
    const priority = body.priority ?? 0;
    if (typeof priority !== "number" || !Number.isInteger(priority) || priority < 0)
      throw hubErrors.badRequest("priority must be a non-negative integer");
    const labels = body.labels ?? {};
    if (!isJsonObject(labels)) throw hubErrors.badRequest("labels must be an object");
    const metrics = isJsonObject(body.metrics) ? body.metrics : {};
    const existing = this.records.get(id);
    const now = new Date().toISOString();
    if (existing) {
      if (ifMatch === undefined || ifMatch === "")
        throw new HubError("ConfigurationAlreadyExists", `Configuration ${id} already exists`);
      if (!etagMatches(ifMatch, identityEtag(existing.etagCounter)))
        throw hubErrors.precondition(`configuration ${id}`);
      // Content and target of a deployment are immutable in IoT Hub; the emulator lets them
      // change (and re-applies) because simulations iterate on them.
    } else if (ifMatch !== undefined && ifMatch !== "" && ifMatch.replace(/"/g, "") !== "*") {
      throw new HubError("ConfigurationNotFound", `Configuration ${id} not found`);
    }
    const rec: ConfigurationRecord = {
      id,
      schemaVersion: typeof body.schemaVersion === "string" ? body.schemaVersion : "1.0",
      labels,
      content,
      targetCondition,
      priority,
      metrics,
      createdTimeUtc: existing?.createdTimeUtc ?? now,
      lastUpdatedTimeUtc: now,
      etagCounter: (existing?.etagCounter ?? 0) + 1,
    };
    this.records.set(id, rec);
    this.hub.store.markDirty();
    this.applyAll();
    return this.get(id);
  }

  delete(id: string, ifMatch?: string): void {
    const rec = this.records.get(id);
    if (!rec) throw new HubError("ConfigurationNotFound", `Configuration ${id} not found`);
    if (!etagMatches(ifMatch, identityEtag(rec.etagCounter)))
      throw hubErrors.precondition(`configuration ${id}`);
    this.records.delete(id);
    this.hub.store.markDirty();
    this.applyAll();
  }

  /** Re-evaluates every device (after a configuration changed). */
  applyAll(): void {
    for (const dev of this.hub.store.devices.values()) this.applyToDevice(dev);
  }

  /** Applies the matching configurations to one device if the matching set changed. */
  applyToDevice(dev: DeviceRecord): void {
    const twin = renderTwin(dev, undefined, false);
    const matching = [...this.records.values()].filter((c) => {
      try {
        return evaluate(parseCondition(c.targetCondition), twin);
      } catch {
        return false;
      }
    });
    const edge = matching.filter((c) => dev.iotEdge && isJsonObject(c.content.modulesContent));
    // The device twin's `configurations`: each matching one "targeted", those in force "applied".
    const { base, layers } = chooseDeployments(edge);
    const applied = new Set([...(base ? [base.id] : []), ...layers.map((c) => c.id)]);
    const statuses: Record<string, { status: "targeted" | "applied" }> = {};
    for (const c of matching) statuses[c.id] = { status: applied.has(c.id) ? "applied" : "targeted" };
    const statusChanged = JSON.stringify(statuses) !== JSON.stringify(dev.configurations ?? {});
    if (statusChanged) {
      dev.configurations = statuses;
      this.hub.store.markDirty();
    }
    const fingerprint = edge
      .map((c) => `${c.id}:${c.etagCounter}`)
      .sort()
      .join(",");
    if (fingerprint === (dev.appliedConfigurations ?? "")) return;
    dev.appliedConfigurations = fingerprint;
    for (const [moduleId, desired] of composeModulesContent(edge))
      this.setModuleDesired(dev, moduleId, desired);
    this.hub.store.markDirty();
  }

  private setModuleDesired(dev: DeviceRecord, moduleId: string, desired: JsonObject): void {
    // The edge agent creates module identities for the modules of its deployment; with no edge
    // agent in the simulation, the hub does it so the content has somewhere to land.
    if (!dev.modules[moduleId]) this.hub.createModule(dev, moduleId, undefined, "IotEdge");
    this.hub.setDesired(dev.deviceId, moduleId, desired);
  }

  /** `POST /devices/{d}/applyConfigurationContent`: replaces the named modules' desired properties. */
  applyContent(deviceId: string, bodyIn: unknown): void {
    const dev = this.hub.device(deviceId);
    if (!isJsonObject(bodyIn)) throw hubErrors.badRequest("configuration content must be a JSON object");
    const mc = bodyIn.modulesContent;
    const dc = bodyIn.deviceContent;
    if (mc !== undefined && !isJsonObject(mc)) throw hubErrors.badRequest("modulesContent must be an object");
    if (dc !== undefined && !isJsonObject(dc)) throw hubErrors.badRequest("deviceContent must be an object");
    if (mc && !dev.iotEdge) throw hubErrors.badRequest(`device ${deviceId} is not an IoT Edge device`);
    const fake: ConfigurationRecord = {
      id: "$applied",
      schemaVersion: "1.0",
      labels: {},
      content: mc ? { modulesContent: mc } : {},
      targetCondition: "",
      priority: 0,
      metrics: {},
      createdTimeUtc: "",
      lastUpdatedTimeUtc: "",
      etagCounter: 0,
    };
    const perModule = composeModulesContent([fake]);
    // Validate everything before the first write, so a bad module entry changes nothing.
    for (const [moduleId, entry] of Object.entries(mc ?? {}))
      if (!isJsonObject(entry) || !isJsonObject(entry[DESIRED]))
        throw hubErrors.badRequest(`modulesContent.${moduleId} needs a "properties.desired" object`);
    for (const [moduleId, desired] of perModule) this.setModuleDesired(dev, moduleId, desired);
    if (dc && isJsonObject(dc[DESIRED])) this.hub.setDesired(deviceId, undefined, dc[DESIRED]);
  }
}
