/**
 * Shared set-up of the gateway integration tests (a helper, not a test file): Azurite with the
 * port ledger written by the rollout's own ledger code, the relay emulator, gateway processes
 * started from cloud/gateway/src/main.ts, and a real site: the relayListener module as a child
 * process, configured through its module twin on the IoT Hub emulator (`startModuleSite`).
 */
import { createHash, randomBytes } from "node:crypto";
import { createServer, type Server, type Socket } from "node:net";
import { createIotHubServiceClients } from "../../lib/azure/iothub-service.ts";
import { createLedger, type PortLedger } from "../../lib/ledger/index.ts";
import type { MappingInput } from "../../lib/twin/index.ts";
import { startAzurite } from "../../sim/azurite.ts";
import { startIotHubEmulator } from "../../sim/iothub-emulator/index.ts";
import {
  type RelayEmulator,
  type StartRelayEmulatorOptions,
  startRelayEmulator,
} from "../../sim/relay-emulator/index.ts";
import { type CleanupContext, type ManagedProcess, spawnTs } from "../helpers/index.ts";
import { type SiteListener, startSiteListener } from "./gateway-site.ts";
import {
  MODULE_ID,
  type ModuleProcess,
  patchDesired,
  type Site,
  startModuleProcess,
  waitReported,
} from "./module-harness.ts";

export { createHash, randomBytes };

export interface Harness {
  ledger: PortLedger;
  connectionString: string;
  relay: RelayEmulator;
  siteId: string;
  listenKey: string;
  sendKey: string;
}

/** A free TCP port on 127.0.0.1 (the ledger needs concrete public ports). */
export { freePort } from "../../sim/ports.ts";

/** The harness's site online at the relay with its Listen key, serving `targets` (name → local port). */
export function startHarnessSite(
  t: CleanupContext,
  h: Harness,
  targets: Record<string, number>,
): Promise<SiteListener> {
  return startSiteListener(t, {
    endpoint: h.relay.url,
    hybridConnection: `site-${h.siteId}`,
    keyName: "listen",
    key: h.listenKey,
    targets,
  });
}

export async function startHarness(
  t: CleanupContext,
  siteId = "s1",
  relayOptions: StartRelayEmulatorOptions = {},
): Promise<Harness> {
  const [azurite, relay] = await Promise.all([startAzurite(), startRelayEmulator(relayOptions)]);
  t.after(() => relay.close());
  t.after(() => azurite.close());
  const hc = `site-${siteId}`;
  relay.admin.putHybridConnection(hc);
  const send = relay.admin.putAuthorizationRule(hc, "send", ["Send"]).rule;
  const listen = relay.admin.putAuthorizationRule(hc, "listen", ["Listen"]).rule;
  const ledger = createLedger(azurite.connectionString, "portledger", {
    ranges: [{ from: 1024, to: 65535 }],
  });
  await ledger.ensureTable();
  await ledger.putSite({
    siteId,
    hybridConnection: hc,
    relayEndpoint: relay.url,
    sendKeyName: "send",
    sendKey: send.primaryKey,
    deviceId: siteId,
    createdAt: new Date().toISOString(),
  });
  return {
    ledger,
    connectionString: azurite.connectionString,
    relay,
    siteId,
    listenKey: listen.primaryKey,
    sendKey: send.primaryKey,
  };
}

export interface GatewayProcess {
  proc: ManagedProcess;
  adminPort: number;
  /** An admin request, with the gateway's `GATEWAY_ADMIN_TOKEN` (if set) unless `token` says otherwise. */
  admin(path: string, method?: string, token?: string | null): Promise<{ status: number; text: string }>;
  metric(name: string, labels: Record<string, string>): Promise<number>;
}

export async function startGateway(
  t: CleanupContext,
  h: Harness,
  env: Record<string, string> = {},
): Promise<GatewayProcess> {
  const proc = spawnTs(t, "cloud/gateway/src/main.ts", [], {
    LEDGER_CONNECTION_STRING: h.connectionString,
    // These tests predate Entra ID and write Send rules into the ledger (gateway-entra.test.ts
    // covers the managed identity).
    GATEWAY_RELAY_AUTH: "sas",
    LEDGER_RELOAD_INTERVAL_MS: "0",
    GATEWAY_BIND_HOST: "127.0.0.1",
    GATEWAY_HEALTH_HOST: "127.0.0.1",
    GATEWAY_HEALTH_PORT: "0",
    GATEWAY_DRAIN_TIMEOUT_MS: "5000",
    // Several gateways of one test share the host name: each reports under its own id.
    GATEWAY_INSTANCE_ID: `gw-${randomBytes(4).toString("hex")}`,
    LOG_LEVEL: "info",
    ...env,
  });
  // Generous: on a loaded machine a cold tsx start of the gateway alone can take 20 s.
  const m = await proc.waitForLine(/"event":"admin-listening","port":(\d+)/, 60_000);
  await proc.waitForLine(/"event":"started"/, 60_000);
  const adminPort = Number(m[1]);
  const admin = async (
    path: string,
    method = "GET",
    token: string | null = env.GATEWAY_ADMIN_TOKEN ?? null,
  ) => {
    const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
    const res = await fetch(`http://127.0.0.1:${adminPort}${path}`, { method, headers });
    return { status: res.status, text: await res.text() };
  };
  const metric = async (name: string, labels: Record<string, string>) => {
    const { text } = await admin("/metrics");
    const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
    // A metric without labels prints as `name value`.
    const line = text
      .split("\n")
      .find(
        (l) => (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && want.every((w) => l.includes(w)),
      );
    return line ? Number(line.split(" ").pop()) : 0;
  };
  return { proc, adminPort, admin, metric };
}

/** An echo server on 127.0.0.1:0 (the site's target). */
export async function echoServer(t: CleanupContext): Promise<{ server: Server; port: number }> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => {});
    s.pipe(s);
  });
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, port: (server.address() as { port: number }).port };
}

/** Writes `payload` and resolves with everything read until the peer closes (we half-close after writing). */
export function roundTrip(socket: Socket, payload: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.once("error", reject);
    socket.once("close", () => resolve(Buffer.concat(chunks)));
    socket.end(payload);
  });
}

export function sha(b: Buffer): string {
  return createHash("sha256").update(b).digest("hex");
}

/** Resolves once `socket` is closed by the far side, with the bytes it received; rejects after `timeoutMs`. */
export function closedBy(socket: Socket, timeoutMs = 10_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => reject(new Error("the gateway did not close the client")), timeoutMs);
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("error", () => {});
    socket.once("close", () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
  });
}

export interface ModuleSite {
  site: Site;
  module: ModuleProcess;
}

/**
 * The real site: the IoT Hub emulator with an edge device `h.siteId` and its `relayListener`
 * module identity, the module as a child process (`modules/relayListener/src/main.ts`, loopback
 * allowlist), and its twin's relay section + `mappings` written through the real Registry. Resolves
 * once the module reports the relay online and every mapping active.
 */
export async function startModuleSite(
  t: CleanupContext,
  h: Harness,
  mappings: Record<string, MappingInput>,
  env: Record<string, string> = {},
): Promise<ModuleSite> {
  const hub = await startIotHubEmulator();
  t.after(() => hub.close());
  const svc = createIotHubServiceClients(hub.serviceConnectionString, {
    restPort: hub.httpsPort,
    ca: hub.caCert,
  });
  await svc.registry.create({ deviceId: h.siteId, capabilities: { iotEdge: true } });
  await svc.registry.addModule({ deviceId: h.siteId, moduleId: MODULE_ID });
  const hybridConnection = `site-${h.siteId}`;
  const site: Site = {
    relay: h.relay,
    hub,
    svc,
    deviceId: h.siteId,
    hybridConnection,
    listenKey: h.listenKey,
    sendKey: h.sendKey,
    relaySection: (key = h.listenKey) => ({
      endpoint: h.relay.url,
      hybridConnection,
      sasKeyName: "listen",
      sasKey: key,
    }),
  };
  const module = await startModuleProcess(t, site, { LOG_LEVEL: "info", ...env });
  const version = await patchDesired(site, { schemaVersion: "1.0", relay: site.relaySection(), mappings });
  await waitReported(
    site,
    (r) =>
      r.appliedDesiredVersion === version &&
      r.relay?.status === "online" &&
      Object.keys(mappings).every((n) => r.mappings?.[n]?.state === "active"),
    "module online with every mapping active",
    20_000,
  );
  return { site, module };
}
