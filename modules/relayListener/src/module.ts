/**
 * The relayListener module, wired: IoT Hub client → twin sync → reconciler (relay listeners,
 * mappings, connections) → throttled reported properties; direct methods; metrics and health.
 * `main.ts` only builds the SDK client and settings and calls {@link startModule}.
 */
import deviceSdk from "azure-iot-device";
import { sleep } from "../../../lib/backoff.ts";
import { errorMessage } from "../../../lib/errors.ts";
import { parseHybridConnection } from "../../../lib/ledger/hybrid-connection.ts";
import type { Logger } from "../../../lib/log.ts";
import { type ReportedProperties, SCHEMA_VERSION } from "../../../lib/twin/index.ts";
import { AUDIT_DEFAULTS, AuditSender } from "./audit-sender.ts";
import type { ModuleHubClient } from "./hub-client.ts";
import { HubConnection } from "./hub-connection.ts";
import { type HubConnectGate, HubReconnectSlots } from "./hub-retry.ts";
import { createListenerFactory } from "./listener-factory.ts";
import { registerMethods } from "./methods.ts";
import { type HealthServer, ModuleMetrics, startHealthServer } from "./metrics.ts";
import { Reconciler } from "./reconciler.ts";
import type { ListenerFactory } from "./relay-listener.ts";
import { Reporter } from "./reporter.ts";
import type { ModuleSettings } from "./settings.ts";
import { TwinSync } from "./twin-sync.ts";
import { moduleVersion } from "./version.ts";

// A CommonJS package: take the class from its default export.
const { Message } = deviceSdk;

export interface StartModuleOptions {
  client: ModuleHubClient;
  settings: ModuleSettings;
  logger: Logger;
  listenerFactory?: ListenerFactory;
  version?: string;
  /**
   * The reconnect slots the client's transport is gated on (main.ts builds both, hub-transport.ts);
   * made from the settings when absent.
   */
  hubSlots?: HubReconnectSlots;
  /** The gate of the client's transport: tells the module when a connection drops. */
  hubGate?: HubConnectGate;
}

export interface RunningModule {
  reconciler: Reconciler;
  twinSync: TwinSync;
  reporter: Reporter;
  metrics: ModuleMetrics;
  health: HealthServer | undefined;
  /** The reported picture, live. */
  status(): ReportedProperties;
  /** Stop accepting, drain (bounded), report offline, close the IoT Hub client. */
  shutdown(): Promise<void>;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  return Promise.race([p, sleep(ms).then(() => undefined)]);
}

/** The SDK's disconnect reason is an Error, a transport result object or nothing. */
function describeReason(reason: unknown): string {
  if (reason instanceof Error) return reason.message;
  const inner = (reason as { reason?: unknown; message?: unknown } | null) ?? {};
  if (typeof inner.message === "string") return inner.message;
  if (typeof inner.reason === "string") return inner.reason;
  if (inner.reason instanceof Error) return inner.reason.message;
  return String(reason);
}

export async function startModule(opts: StartModuleOptions): Promise<RunningModule> {
  const { client, settings, logger } = opts;
  const version = opts.version ?? moduleVersion(settings.version);
  const startedAt = new Date().toISOString();
  let stopping = false;
  let hubConnected = false;

  let reporter: Reporter | undefined;
  let metrics: ModuleMetrics | undefined;
  // Tunnel audit records go upstream on output "audit", batched and bounded (audit-sender.ts).
  const audit = new AuditSender({ ...AUDIT_DEFAULTS, intervalMs: settings.auditIntervalMs, logger });
  const deviceId = settings.deviceId;
  const sendOutput = client.sendOutputEvent?.bind(client);
  if (sendOutput) {
    audit.attach(async (body, properties) => {
      const message = new Message(body);
      message.contentType = "application/json";
      message.contentEncoding = "utf-8";
      for (const [k, v] of Object.entries(properties)) message.properties.add(k, v);
      await sendOutput("audit", message);
    });
  }
  // Reconnects spread over the fleet's period, for the SDK's own retries and the module's re-opens;
  // the phase the rollout assigned comes with the twin (ADR 0031), until then the module's own.
  const hubSlots = opts.hubSlots ?? new HubReconnectSlots(settings.hubReconnect);
  const reconciler = new Reconciler({
    listenerFactory:
      opts.listenerFactory ??
      createListenerFactory({
        ca: settings.relayCa,
        count: settings.listenerCount,
        retryPeriodMs: settings.relayRetryPeriodMs,
        logger,
      }),
    listenerCount: settings.listenerCount,
    allowlist: settings.allowlist,
    logger,
    preambleTimeoutMs: settings.preambleTimeoutMs,
    keepAliveMs: settings.keepAliveMs,
    standby: settings.standby,
    changed: () => reporter?.markChanged(),
    onHubReconnect: (part) => {
      const before = hubSlots.phase;
      hubSlots.usePhase(part?.phase);
      if (hubSlots.phase !== before)
        logger.info(
          { phase: hubSlots.phase, origin: hubSlots.phaseOrigin, periodMs: hubSlots.periodMs },
          "IoT Hub reconnect phase set",
        );
    },
    onOutcome: (mapping, outcome) => metrics?.connections.inc({ mapping, outcome }),
    onBytes: (mapping, direction, bytes) => metrics?.bytes.inc({ mapping, direction }, bytes),
    onTunnelEnd: (record) => {
      // `site-<id>`, or `site-<id>.k<n>` after a key rotation: the record names the site either way.
      const site = parseHybridConnection(reconciler.state().relay.hybridConnection ?? "")?.siteId;
      audit.add({
        ...record,
        ...(site ? { site } : {}),
        ...(deviceId ? { device: deviceId } : {}),
      });
    },
  });

  const status = (): ReportedProperties => {
    const s = reconciler.state();
    return {
      schemaVersion: SCHEMA_VERSION,
      moduleVersion: version,
      appliedDesiredVersion: s.appliedDesiredVersion,
      status: stopping ? "offline" : "running",
      startedAt,
      updatedAt: new Date().toISOString(),
      relay: s.relay,
      mappings: s.mappings,
      errors: s.errors,
      hubReconnect: { phase: hubSlots.phase, origin: hubSlots.phaseOrigin, periodMs: hubSlots.periodMs },
    };
  };
  reporter = new Reporter({ intervalMs: settings.reportIntervalMs, build: status, logger });
  metrics = new ModuleMetrics(() => {
    const s = reconciler.state();
    return {
      activeByMapping: Object.fromEntries(
        Object.entries(s.mappings).map(([n, m]) => [n, m.activeConnections]),
      ),
      listenersOnline: s.relay.listeners.filter((l) => l.status === "online").length,
      appliedDesiredVersion: s.appliedDesiredVersion,
      twinErrors: s.errors.length,
      standbyHeld: reconciler.standbyHeld,
    };
  });

  logger.info(
    {
      moduleVersion: version,
      allowlist: settings.allowlist.describe(),
      listenerCount: settings.listenerCount,
    },
    "relayListener starting",
  );
  if (settings.ignoredAllowlistEnv) {
    logger.warn(
      "RELAY_ALLOWED_TARGETS is set but ignored: the allowlist comes only from the device's allowlist file",
    );
  }

  const hub = new HubConnection(client, {
    slots: hubSlots,
    deadlineMs: settings.twinTimeoutMs,
    logger,
    isStopping: () => stopping,
    // The hub may have lost reported properties in flight, and missed desired patches while the
    // client was stuck: re-read the twin, then report the whole current state.
    onReopened: async () => {
      await twinSync.refresh();
      attachReporter();
    },
  });
  if (opts.hubGate) opts.hubGate.onDropped = () => hub.transportLost();
  const twinSync = new TwinSync(client, (desired, v) => void reconciler.applyDesired(desired, v), {
    twinTimeoutMs: settings.twinTimeoutMs,
    twinResyncMs: settings.twinResyncMs,
    logger,
    onNoAnswer: (why) => void hub.reopen(why),
  });

  client.on("error", (err) => logger.warn({ err: errorMessage(err) }, "IoT Hub client error"));
  client.on("connect", () => {
    hubConnected = true;
  });
  client.on("disconnect", (reason) => {
    hubConnected = false;
    if (stopping) return;
    // The SDK gave up reconnecting by itself: reopen, then re-read the twin.
    void hub.reconnect(reason === undefined ? "disconnected" : describeReason(reason));
  });

  /** Reported properties go to the twin the client has now, each update under the deadline. */
  let attached = false;
  const attachReporter = () => {
    const twin = twinSync.twinPort;
    if (!twin) return;
    if (attached) {
      reporter.resendAll();
      return;
    }
    attached = true;
    const previous = twin.properties.reported?.mappings;
    const previousNames = typeof previous === "object" && previous !== null ? Object.keys(previous) : [];
    reporter.attach(
      (patch) =>
        hub.call(
          "reported properties update",
          () =>
            new Promise<void>((resolve, reject) => {
              const current = twinSync.twinPort ?? twin;
              current.properties.reported.update(patch, (err) => (err ? reject(err) : resolve()));
            }),
        ),
      previousNames.filter((n) => !n.startsWith("$")),
    );
  };

  await hub.open();
  // From now on the SDK's own reconnects wait for the module's slot too (the first open kept the
  // SDK's default: a fleet does not start within one second, it recovers within one).
  client.setRetryPolicy?.(hubSlots);
  hubConnected = true;
  await twinSync.start();
  attachReporter();
  registerMethods(client, {
    reconciler,
    allowlist: settings.allowlist,
    status,
    refreshTwin: () => twinSync.refresh(),
    logger,
    responseDeadlineMs: settings.twinTimeoutMs,
  });

  let health: HealthServer | undefined;
  if (settings.metricsPort !== undefined) {
    health = await startHealthServer(
      metrics,
      () => {
        const s = status();
        const relayOk = s.relay.status === "online" || s.relay.status === "unconfigured";
        return {
          ok: !stopping && relayOk,
          detail: {
            relay: s.relay.status,
            iothub: hubConnected ? "connected" : "disconnected",
            appliedDesiredVersion: s.appliedDesiredVersion,
          },
        };
      },
      settings.metricsPort,
      settings.metricsHost,
    );
  }
  logger.info(
    { metricsPort: health?.port ?? null, desiredVersion: twinSync.desiredVersion },
    "relayListener ready",
  );

  return {
    reconciler,
    twinSync,
    reporter,
    metrics,
    health,
    status,
    async shutdown() {
      if (stopping) return;
      stopping = true;
      logger.info({ drainMs: settings.shutdownDrainMs }, "shutting down: no new connections, draining");
      await reconciler.shutdown(settings.shutdownDrainMs);
      twinSync.stop();
      reporter.markChanged();
      await withTimeout(reporter.flush(), 5_000);
      reporter.stop();
      await withTimeout(audit.flush(), 2_000);
      audit.stop();
      await withTimeout(hub.closeQuietly(), 5_000);
      await health?.close();
      logger.info("relayListener stopped");
    },
  };
}
