/**
 * Converges one site to its spec: its devices and their module identities, the hybrid connection
 * and rules, ledger row, public ports, every device's module twin and tags. Every step checks
 * before it creates, so running it twice, or again after a crash at any step, ends in the same
 * state with nothing duplicated.
 *
 * A site has one or more edge devices (a redundant site, ADR 0014). What they share is the
 * site's: the hybrid connection and its Listen rule (several listeners on one hybrid connection
 * is how Azure Relay spreads a site's connections over its devices), the public ports and the
 * ledger row. What each has of its own is the device's: its identity, its relayListener module
 * identity and twin (all given the same desired properties) and its tags.
 */
import { RelayFleetError } from "../../../../lib/errors.ts";
import { FLEET_TAG, type FleetTag, fleetTag } from "../../../../lib/fleet-deployment.ts";
import type { RouteRow, SiteRow } from "../../../../lib/ledger/index.ts";
import { computeMergePatch } from "../../../../lib/twin/merge-patch.ts";
import type { RelayAdmin } from "../relay-admin/types.ts";
import { hybridConnectionOf, listenRule, type OnboardStep, type RolloutDeps, sendRule } from "./context.ts";
import { buildDesired, MODULE_ID, withoutMeta } from "./desired-twin.ts";
import type { JsonObject, ModuleTwinView } from "./hub.ts";
import { namespacesOf, placeSite, relayFor } from "./namespaces.ts";
import { reconnectPhases } from "./reconnect-phases.ts";
import type { MappingSpec, SiteSpec } from "./schemas.ts";
import { validateDesiredForWrite } from "./validate-desired.ts";

/** How far an `applySite` run got: the step under way, and whether the spec is saved yet. */
export interface ApplyProgress {
  step?: OnboardStep;
  /** The site row with the new spec was written: from here on the change is on record. */
  saved: boolean;
}

async function step(deps: RolloutDeps, name: OnboardStep, siteId: string, progress?: ApplyProgress) {
  if (progress) progress.step = name;
  await deps.beforeStep?.(name, siteId);
}

/** A key kept if it is still one of the rule's two keys (rotation alternates slots), else the primary. */
function pickKey(current: unknown, keys: { primaryKey: string; secondaryKey: string }): string {
  return current === keys.primaryKey || current === keys.secondaryKey ? (current as string) : keys.primaryKey;
}

function sameEndpoint(route: RouteRow, spec: MappingSpec): boolean {
  const p = spec.public;
  if (p.kind === "tcp") return route.kind === "tcp" && (p.port === undefined || p.port === route.port);
  return route.kind === p.kind && route.port === p.port && route.hostname === p.hostname.toLowerCase();
}

/** The gateway's limits of a mapping; a limit left unset stays unset (the gateway's default). */
function routeOptions(spec: MappingSpec) {
  return {
    allowCidrs: spec.allowCidrs,
    maxConnections: spec.maxConnections,
    ratePerMinute: spec.ratePerMinute,
    proxyProtocol: spec.proxyProtocol !== "none",
    ...(spec.idleTimeoutMs !== undefined ? { idleTimeoutMs: spec.idleTimeoutMs } : {}),
    ...(spec.maxConnectionsPerSource !== undefined
      ? { maxConnectionsPerSource: spec.maxConnectionsPerSource }
      : {}),
    ...(spec.silentTimeoutMs !== undefined ? { silentTimeoutMs: spec.silentTimeoutMs } : {}),
    // The gateway sends the mapping's logical port name; absent, its name (the row's portName).
    ...(spec.portName !== undefined ? { logicalPort: spec.portName } : {}),
  };
}

/** Field-by-field equality of two route rows, whatever their key order. */
function sameRow(a: RouteRow, b: RouteRow): boolean {
  const canonical = (r: RouteRow) => JSON.stringify(Object.entries(r).sort(([x], [y]) => x.localeCompare(y)));
  return canonical(a) === canonical(b);
}

/**
 * Makes the site's routes match its mappings: keeps a matching route (updating its limits),
 * allocates missing ones, releases routes of removed mappings and duplicates left by a race
 * between two instances (the lowest port wins, so both racers keep the same one).
 */
export async function syncRoutes(
  deps: RolloutDeps,
  spec: SiteSpec,
  options: { newSite?: boolean } = {},
): Promise<RouteRow[]> {
  // A site that had no row has no routes (see `ApplyHints.row`): no scan of the route rows.
  const existing = options.newSite
    ? []
    : (await deps.ledger.listRoutes({ siteId: spec.siteId })).sort((a, b) => a.port - b.port);
  const kept: RouteRow[] = [];
  const claimed = new Set<string>();
  for (const [name, mapping] of Object.entries(spec.mappings)) {
    const match = existing.find((r) => r.portName === name && sameEndpoint(r, mapping));
    if (match) {
      claimed.add(match.rowKey);
      const {
        idleTimeoutMs: _i,
        maxConnectionsPerSource: _m,
        silentTimeoutMs: _s,
        logicalPort: _l,
        ...fixed
      } = match;
      const updated: RouteRow = { ...fixed, ...routeOptions(mapping) };
      if (!sameRow(updated, match)) await deps.ledger.updateRoute(updated);
      kept.push(updated);
      continue;
    }
    const row = await deps.ledger.allocate({
      siteId: spec.siteId,
      portName: name,
      endpoint: mapping.public,
      options: routeOptions(mapping),
    });
    claimed.add(row.rowKey);
    kept.push(row);
  }
  for (const r of existing) if (!claimed.has(r.rowKey)) await deps.ledger.release(r.rowKey);
  return kept;
}

/** What a caller already knows about the site's devices (the onboarding queue's bulk create). */
export interface ApplyHints {
  /** Devices created as IoT Edge devices just now: no read before their module is created. */
  newDevices?: ReadonlySet<string>;
  /**
   * The site's ledger row as the caller read it just now under the site's lock (`null`: it has
   * none), so the change does not read it again. A site without a row has no routes either: the
   * row is written before the ports and deleted after them (apply.ts, offboard.ts), so a new
   * site's routes are not searched for (a scan of every route row, the ledger's largest table).
   */
  row?: SiteRow | null;
  /**
   * Devices the caller created a moment ago for this site (the onboarding queue's bulk call, on
   * the site's first attempt) and nobody has written since: their module twin and tags are known
   * to be empty, so they are written without being read first (two twin reads a device fewer).
   */
  untouched?: ReadonlySet<string>;
  /**
   * Reconnect phase ordinals the caller reserved for devices it created (the onboarding queue
   * takes one block a batch, ADR 0031): a device without a phase takes its own from here.
   */
  ordinals?: ReadonlyMap<string, number>;
}

/** Result of applying a site. */
export interface AppliedSite {
  spec: SiteSpec;
  /** The site row as written. */
  row: SiteRow;
  routes: RouteRow[];
  desiredVersion: number;
}

/** Length of a Relay SAS key (base64 of 32 bytes): the stand-in when checking a twin before the rule exists. */
const SAS_KEY_LENGTH = 44;

/**
 * Checks a whole change before anything is written: the module twin it would produce (the
 * `lib/twin` schema and IoT Hub's 32 KB limit) and every public endpoint it needs (in range, free,
 * not asked for twice). Read-only; throws the error the change would otherwise fail with half way.
 */
export async function checkSite(deps: RolloutDeps, spec: SiteSpec, hints: ApplyHints = {}): Promise<void> {
  const row = hints.row !== undefined ? (hints.row ?? undefined) : await deps.ledger.getSite(spec.siteId);
  const desired = buildDesired(
    {
      endpoint: row?.relayEndpoint ?? namespacesOf(deps)[0]?.admin.endpoint ?? deps.relay.endpoint,
      hybridConnection: hybridConnectionOf(spec.siteId),
      sasKeyName: listenRule(deps),
      sasKey: "k".repeat(SAS_KEY_LENGTH),
    },
    spec.mappings,
    // A stand-in phase: IoT Hub counts a number 8 bytes whatever its value.
    0.5,
  );
  (deps.validateDesired ?? validateDesiredForWrite)(desired);

  const existing = hints.row === null ? [] : await deps.ledger.listRoutes({ siteId: spec.siteId });
  const asked = new Map<string, string>();
  for (const [name, mapping] of Object.entries(spec.mappings)) {
    const p = mapping.public;
    if (p.kind !== "tcp" || p.port !== undefined) {
      const key = p.kind === "tcp" ? `port ${p.port}` : `${p.hostname.toLowerCase()} on port ${p.port}`;
      const other = asked.get(key);
      if (other !== undefined) {
        throw new RelayFleetError(
          p.kind === "tcp" ? "RF_ERR_LEDGER_PORT_TAKEN" : "RF_ERR_LEDGER_HOSTNAME_TAKEN",
          `Mappings "${other}" and "${name}" both ask for public ${key}.`,
        );
      }
      asked.set(key, name);
    }
    if (existing.some((r) => r.portName === name && sameEndpoint(r, mapping))) continue;
    await deps.ledger.checkAllocate({ siteId: spec.siteId, portName: name, endpoint: p });
  }
}

/**
 * Converges a site to `spec` (create or update). `progress` tells a caller whose run failed how
 * far it got (see `ApplyProgress`).
 */
export async function applySite(
  deps: RolloutDeps,
  spec: SiteSpec,
  progress?: ApplyProgress,
  hints: ApplyHints = {},
): Promise<AppliedSite> {
  const { siteId, deviceIds } = spec;
  const existing = hints.row !== undefined ? (hints.row ?? undefined) : await deps.ledger.getSite(siteId);
  // A site stays in its namespace (moving it is `relay-fleet sites move`); a new one is placed
  // where it fits (namespaces.ts), before anything is written.
  const placement = existing ? undefined : await placeSite(deps, siteId, deviceIds.length);
  const relay = placement?.admin ?? relayFor(deps, existing?.relayEndpoint ?? "");
  try {
    // A site keeps the hybrid connection of its current key generation (rotate.ts moves it).
    const hc = existing?.hybridConnection ?? hybridConnectionOf(siteId);
    return await applyIn(deps, relay, hc, spec, progress, hints);
  } finally {
    placement?.release(progress?.saved ?? true);
  }
}

async function applyIn(
  deps: RolloutDeps,
  relay: RelayAdmin,
  hc: string,
  spec: SiteSpec,
  progress: ApplyProgress | undefined,
  hints: ApplyHints,
): Promise<AppliedSite> {
  const { siteId, deviceIds } = spec;
  const fresh = (deviceId: string) => hints.newDevices?.has(deviceId) === true;

  await step(deps, "device", siteId, progress);
  for (const deviceId of deviceIds) if (!fresh(deviceId)) await deps.hub.ensureEdgeDevice(deviceId);

  await step(deps, "module", siteId, progress);
  for (const deviceId of deviceIds)
    await deps.hub.ensureModule(deviceId, MODULE_ID, { fresh: fresh(deviceId) });

  await step(deps, "hybrid-connection", siteId, progress);
  await relay.ensureHybridConnection(hc);

  await step(deps, "rules", siteId, progress);
  const listen = await relay.ensureRule(hc, listenRule(deps), ["Listen"]);
  // With Entra ID the gateways hold Azure Relay Sender; no Send rule exists to leak.
  const send =
    deps.relaySendAuth === "entra" ? undefined : await relay.ensureRule(hc, sendRule(deps), ["Send"]);

  // The ledger row comes before the ports: every route then belongs to a known site, and
  // reconcile can finish a half-done onboarding from the spec stored here.
  await step(deps, "ledger", siteId, progress);
  // The row as it is now (a key kept, its creation time); the caller's when it read it just now.
  const row = hints.row !== undefined ? (hints.row ?? undefined) : await deps.ledger.getSite(siteId);
  // Claims before the row: a stop between the two leaves a claim the row does not confirm
  // (harmless), never a device of the row without its claim (checkDevicesFree would miss it).
  await deps.ledger.claimDevices(siteId, deviceIds);
  const written: SiteRow = {
    siteId,
    hybridConnection: hc,
    relayEndpoint: relay.endpoint,
    ...(send ? { sendKeyName: send.name, sendKey: pickKey(row?.sendKey, send) } : {}),
    // The row's one device column is the site's first device; the spec lists them all.
    deviceId: deviceIds[0] ?? siteId,
    createdAt: row?.createdAt ?? new Date().toISOString(),
    profile: spec.profile,
    spec: JSON.stringify(spec),
  };
  await deps.ledger.putSite(written);
  if (progress) progress.saved = true;

  await step(deps, "ports", siteId, progress);
  const routes = await syncRoutes(deps, spec, { newSite: hints.row === null });

  await step(deps, "twin", siteId, progress);
  let desiredVersion = 0;
  const untouched = (deviceId: string) => hints.untouched?.has(deviceId) === true;
  // Every twin read first (a module created a moment ago has an empty twin: nothing to read), so
  // the devices still without a reconnect phase take theirs in one block.
  const twins = new Map<string, ModuleTwinView | undefined>();
  for (const deviceId of deviceIds)
    twins.set(deviceId, untouched(deviceId) ? undefined : await deps.hub.getModuleTwin(deviceId, MODULE_ID));
  const phases = await reconnectPhases(
    deps.ledger,
    deviceIds,
    (deviceId) => withoutMeta(twins.get(deviceId)?.desired ?? {}),
    hints.ordinals,
  );
  for (const deviceId of deviceIds) {
    const v = await writeModuleTwin(
      deps,
      relay.endpoint,
      deviceId,
      twins.get(deviceId),
      hc,
      listen,
      spec,
      phases.get(deviceId),
    );
    if (deviceId === deviceIds[0]) desiredVersion = v;
  }

  await step(deps, "tags", siteId, progress);
  const wanted = fleetTag(
    siteId,
    spec.profile,
    routes.map((r) => r.port),
  );
  for (const deviceId of deviceIds) await writeFleetTag(deps, deviceId, wanted, untouched(deviceId));
  return { spec, row: written, routes, desiredVersion };
}

/**
 * Writes one device's module twin (a merge patch on `twin`, as read just now or undefined for a
 * module created a moment ago; nothing when it is current); its desired `$version`.
 */
async function writeModuleTwin(
  deps: RolloutDeps,
  endpoint: string,
  deviceId: string,
  twin: ModuleTwinView | undefined,
  hc: string,
  listen: { name: string; primaryKey: string; secondaryKey: string },
  spec: SiteSpec,
  phase: number | undefined,
): Promise<number> {
  const currentDesired = withoutMeta(twin?.desired ?? {});
  const relayNow = (currentDesired.relay ?? {}) as JsonObject;
  const desired = buildDesired(
    {
      endpoint,
      hybridConnection: hc,
      sasKeyName: listen.name,
      sasKey: pickKey(relayNow.sasKey, listen),
    },
    spec.mappings,
    phase,
  );
  (deps.validateDesired ?? validateDesiredForWrite)(desired);
  const patch = computeMergePatch(currentDesired, desired);
  if (Object.keys(patch).length === 0) return twin?.desiredVersion ?? 0;
  return deps.hub.patchModuleDesired(deviceId, MODULE_ID, patch);
}

/** Tags one device with its site (only the rollout's fields: an operator's ring tag stays). */
async function writeFleetTag(
  deps: RolloutDeps,
  deviceId: string,
  wanted: FleetTag,
  untouched = false,
): Promise<void> {
  const tags = untouched ? undefined : await deps.hub.getDeviceTags(deviceId);
  const current = (tags?.[FLEET_TAG] ?? {}) as JsonObject;
  const changed = Object.entries(wanted).some(([k, v]) => JSON.stringify(current[k]) !== JSON.stringify(v));
  // Arrays are replaced whole by a merge patch, which is what publicPorts needs.
  if (changed) await deps.hub.patchDeviceTags(deviceId, { [FLEET_TAG]: { ...wanted } });
}
