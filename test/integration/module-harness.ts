/**
 * Harness for the relayListener integration tests: the relay emulator (TLS) and the IoT Hub
 * emulator in process, the module as a real child process (`modules/relayListener/src/main.ts`),
 * desired properties written through the real `Registry.updateModuleTwin`, and a sender that
 * opens a logical port the way the gateway does (Send token, azbridge preamble, wait for reply).
 */
import { writeFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import WebSocket from "ws";
import { createIotHubServiceClients, type IotHubServiceClients } from "../../lib/azure/iothub-service.ts";
import { encodePreamble, ReplyParser } from "../../lib/hyco/preamble.ts";
import { createSasToken } from "../../lib/hyco/sas.ts";
import { connectUrl, tokenAudience } from "../../lib/hyco/urls.ts";
import { type IotHubEmulator, startIotHubEmulator } from "../../sim/iothub-emulator/index.ts";
import { type RelayEmulator, startRelayEmulator } from "../../sim/relay-emulator/index.ts";
import { type CleanupContext, type ManagedProcess, spawnTs, tempDir, waitFor } from "../helpers/index.ts";

export const MODULE_ID = "relayListener";

export interface Site {
  relay: RelayEmulator;
  hub: IotHubEmulator;
  svc: IotHubServiceClients;
  deviceId: string;
  hybridConnection: string;
  listenKey: string;
  sendKey: string;
  relaySection(key?: string): Record<string, string>;
}

export async function startSite(t: CleanupContext, deviceId = "site-a"): Promise<Site> {
  const relay = await startRelayEmulator({ tls: true });
  t.after(() => relay.close());
  const hub = await startIotHubEmulator();
  t.after(() => hub.close());
  const svc = createIotHubServiceClients(hub.serviceConnectionString, {
    restPort: hub.httpsPort,
    ca: hub.caCert,
  });
  await svc.registry.create({ deviceId, capabilities: { iotEdge: true } });
  await svc.registry.addModule({ deviceId, moduleId: MODULE_ID });
  const hybridConnection = `site-${deviceId}`;
  relay.admin.putHybridConnection(hybridConnection);
  const listen = relay.admin.putAuthorizationRule(hybridConnection, "listen", ["Listen"]).rule;
  const send = relay.admin.putAuthorizationRule(hybridConnection, "send", ["Send"]).rule;
  return {
    relay,
    hub,
    svc,
    deviceId,
    hybridConnection,
    listenKey: listen.primaryKey,
    sendKey: send.primaryKey,
    relaySection(key = listen.primaryKey) {
      return { endpoint: relay.endpoint, hybridConnection, sasKeyName: "listen", sasKey: key };
    },
  };
}

/** The device owner's allowlist file for a test site (the module reads no allowlist from its env). */
export function allowlistFile(t: CleanupContext, text = "127.0.0.0/8:*\n"): string {
  const file = join(tempDir(t), "allowlist.txt");
  writeFileSync(file, text);
  return file;
}

/** Module environment: emulator identity, loopback allowlist, fast timers for tests. */
export function moduleEnv(
  t: CleanupContext,
  site: Site,
  extra: Record<string, string> = {},
  moduleId = MODULE_ID,
): Record<string, string> {
  return {
    ...site.hub.moduleEnvironment(site.deviceId, moduleId),
    RELAY_CA_FILE: site.relay.caFile ?? "",
    RELAY_ALLOWLIST_FILE: allowlistFile(t),
    METRICS_PORT: "0",
    METRICS_HOST: "127.0.0.1",
    REPORT_INTERVAL_MS: "200",
    RELAY_RETRY_PERIOD_MS: "300",
    SHUTDOWN_DRAIN_MS: "2000",
    TWIN_TIMEOUT_MS: "3000",
    LOG_LEVEL: "debug",
    ...extra,
  };
}

export interface ModuleProcess extends ManagedProcess {
  metricsPort: number;
}

export async function startModuleProcess(
  t: CleanupContext,
  site: Site,
  extra: Record<string, string> = {},
  moduleId = MODULE_ID,
): Promise<ModuleProcess> {
  const proc = spawnTs(t, "modules/relayListener/src/main.ts", [], moduleEnv(t, site, extra, moduleId));
  const m = await proc.waitForLine(/"metricsPort":(\d+)[^\n]*"msg":"relayListener ready"/, 30_000);
  return Object.assign(proc, { metricsPort: Number(m[1]) });
}

/** Replaces the desired properties' given keys through the real Registry (a twin PATCH). */
export async function patchDesired(
  site: Site,
  desired: Record<string, unknown>,
  moduleId = MODULE_ID,
): Promise<number> {
  const { responseBody } = await site.svc.registry.updateModuleTwin(
    site.deviceId,
    moduleId,
    { properties: { desired } },
    "*",
  );
  return (responseBody as unknown as { properties: { desired: { $version: number } } }).properties.desired
    .$version;
}

export async function reported(site: Site, moduleId = MODULE_ID): Promise<Record<string, unknown>> {
  const { responseBody } = await site.svc.registry.getModuleTwin(site.deviceId, moduleId);
  return (responseBody as unknown as { properties: { reported: Record<string, unknown> } }).properties
    .reported;
}

type ReportedView = {
  appliedDesiredVersion?: number;
  status?: string;
  relay?: { status?: string; keyFingerprint?: string; listeners?: Array<{ status: string }> };
  mappings?: Record<
    string,
    {
      state: string;
      activeConnections: number;
      totalConnections: number;
      bytesIn: number;
      bytesOut: number;
      lastError: string | null;
    }
  >;
  errors?: Array<{ path: string; message: string }>;
  hubReconnect?: { phase: number; origin: string; periodMs: number };
};

export async function waitReported(
  site: Site,
  predicate: (r: ReportedView) => boolean,
  what: string,
  timeoutMs = 15_000,
  moduleId = MODULE_ID,
): Promise<ReportedView> {
  return waitFor(
    async () => {
      const r = (await reported(site, moduleId)) as ReportedView;
      return predicate(r) ? r : undefined;
    },
    what,
    { timeoutMs, intervalMs: 100 },
  );
}

/** Opens logical port `portName` as the gateway does; rejects when the site refuses. */
export function openPort(
  site: Site,
  portName: string,
  timeoutMs = 10_000,
): Promise<{ ws: WebSocket; early: Buffer[] }> {
  const token = createSasToken(
    tokenAudience(site.relay.endpoint, site.hybridConnection),
    "send",
    site.sendKey,
  );
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(connectUrl(site.relay.endpoint, site.hybridConnection), {
      headers: { ServiceBusAuthorization: token },
      ca: site.relay.ca,
      handshakeTimeout: timeoutMs,
    });
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error("no preamble reply in time"));
    }, timeoutMs);
    const reply = new ReplyParser();
    const early: Buffer[] = [];
    let done = false;
    ws.on("open", () => ws.send(encodePreamble(portName)));
    ws.on("message", (data: Buffer) => {
      if (done) {
        early.push(data);
        return;
      }
      const step = reply.push(data);
      if (!step.done) return;
      done = true;
      clearTimeout(timer);
      if (!step.value.ok) {
        ws.terminate();
        reject(new Error(`refused: ${step.value.reason}`));
        return;
      }
      if (step.rest.length) early.push(Buffer.from(step.rest));
      resolve({ ws, early });
    });
    ws.on("unexpected-response", (_req, res) => {
      clearTimeout(timer);
      reject(new Error(`relay answered ${res.statusCode}`));
    });
    ws.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    ws.on("close", (code, reason) => {
      clearTimeout(timer);
      if (!done) reject(new Error(`closed ${code} ${reason.toString()}`));
    });
  });
}

/** Sends `payload` through an opened port to an echo target and collects the echo. */
export async function roundTrip(
  ws: WebSocket,
  early: Buffer[],
  payload: Buffer,
  timeoutMs = 10_000,
): Promise<Buffer> {
  const chunks = [...early];
  let size = chunks.reduce((n, c) => n + c.length, 0);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`echo incomplete: ${size}/${payload.length}`)),
      timeoutMs,
    );
    const check = () => {
      if (size >= payload.length) {
        clearTimeout(timer);
        resolve(Buffer.concat(chunks));
      }
    };
    ws.on("message", (data: Buffer) => {
      chunks.push(data);
      size += data.length;
      check();
    });
    for (let i = 0; i < payload.length; i += 60_000) ws.send(payload.subarray(i, i + 60_000));
    check();
  });
}

/** A TCP echo server on a free loopback port. */
export async function startEcho(
  t: CleanupContext,
  port = 0,
): Promise<{ port: number; server: Server; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => {});
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", () => r()));
  t.after(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
  const address = server.address();
  return { port: typeof address === "object" && address ? address.port : 0, server, sockets };
}
