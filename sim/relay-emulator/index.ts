/**
 * A local Azure Relay Hybrid Connections service that speaks the real wire protocol
 * (docs: relay-protocol.md §5), for the simulation and for tests:
 *
 *   const relay = await startRelayEmulator({ tls: true });
 *   relay.admin.putHybridConnection("site-0042");
 *   // listeners: relay.url + "/$hc/site-0042?sb-hc-action=listen" with a Listen token …
 *   await relay.close();
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WebSocketServer } from "ws";
import { createLogger } from "../../lib/log.ts";
import { writeLocalCertificates } from "../../lib/tls/local-ca.ts";
import type { EmulatorContext } from "./context.ts";
import type { ControlChannel } from "./control-channel.ts";
import { FaultState } from "./fault-state.ts";
import { createFaults, type RelayFaults } from "./faults.ts";
import { chosenProtocol, extraResponseHeaders } from "./handlers/accept.ts";
import { createAdmin, handleAdmin, type RelayAdmin } from "./handlers/admin.ts";
import { type HybridConnection, Namespace, ROOT_RULE_NAME } from "./namespace.ts";
import { type Distribution, type RelayEmulatorOptions, resolveOptions } from "./options.ts";
import { wireServer } from "./server.ts";
import { existingCertificates, loadNamespace, persistingAdmin, saveNamespace } from "./state-file.ts";
import { type RelayEmulatorStats, Stats } from "./stats.ts";

export type { RelayFaults } from "./faults.ts";
export type { RelayAdmin, RuleView } from "./handlers/admin.ts";
export type { HybridConnectionInfo } from "./namespace.ts";
export { ROOT_RULE_NAME } from "./namespace.ts";
export type { Distribution, HybridConnectionSpec, RelayEmulatorOptions, Right, RuleSpec } from "./options.ts";
export { DEFAULT_OPTIONS } from "./options.ts";
export type { RoleAssignment } from "./role-assignments.ts";
export type { RelayEmulatorStats } from "./stats.ts";

export interface RelayEmulator {
  /** `sb://127.0.0.1:<port>`: what goes in a connection string / the twin's relay.endpoint. */
  readonly endpoint: string;
  /** `ws://127.0.0.1:<port>` or `wss://…` when tls. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly tls: boolean;
  /** PEM file of the CA that signed the server certificate (tls only). */
  readonly caFile: string | undefined;
  /** PEM text of that CA (tls only), for a client's `ca` option. */
  readonly ca: string | undefined;
  /** Namespace-level rule with Manage, Listen and Send. */
  readonly manageKeyName: string;
  readonly manageKey: string;
  readonly admin: RelayAdmin;
  readonly faults: RelayFaults;
  stats(): RelayEmulatorStats;
  /** Stops listening, drops every connection, removes a temp CA dir. Idempotent. */
  close(): Promise<void>;
}

export type StartRelayEmulatorOptions = Partial<RelayEmulatorOptions>;

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function listenerPicker(distribution: Distribution): (hc: HybridConnection) => ControlChannel | undefined {
  const rr = new WeakMap<HybridConnection, number>();
  const random = typeof distribution === "object" ? mulberry32(distribution.seed) : Math.random;
  return (hc) => {
    // A channel whose close frame already arrived is CLOSING: never offer it a sender.
    const all = ([...hc.listeners] as ControlChannel[]).filter((l) => l.ws.readyState === l.ws.OPEN);
    if (all.length === 0) return undefined;
    if (distribution === "round-robin") {
      const i = (rr.get(hc) ?? 0) % all.length;
      rr.set(hc, i + 1);
      return all[i];
    }
    return all[Math.floor(random() * all.length)];
  };
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once("error", onError);
    server.listen(port, host, () => {
      server.removeListener("error", onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** Starts an emulator (port 0 by default) and resolves once it is listening. */
export async function startRelayEmulator(partial: StartRelayEmulatorOptions = {}): Promise<RelayEmulator> {
  const options = resolveOptions(partial);
  const logger =
    options.logger ?? createLogger("relay-emulator", { level: process.env.LOG_LEVEL ?? "silent" });
  let tempDir: string | undefined;
  let certs: { caFile: string; caCert: string; cert: string; key: string } | undefined;
  if (options.tls) {
    if (options.dir === undefined) tempDir = mkdtempSync(join(tmpdir(), "relay-emulator-"));
    const dir = options.dir ?? (tempDir as string);
    // A restart with the same --dir keeps its CA: clients already trust that CA file.
    certs =
      (options.dir === undefined ? undefined : existingCertificates(dir)) ??
      writeLocalCertificates(dir, [options.host, ...options.tlsHosts], "Relay Fleet relay emulator CA");
  }
  const server: Server = certs ? createHttpsServer({ cert: certs.cert, key: certs.key }) : createHttpServer();
  // Idle keep-alive sockets of admin clients stay open as Azure's front ends keep them (Node's 5 s
  // default races clients reusing them: "socket hang up").
  server.keepAliveTimeout = 120_000;
  const wsCommon = { noServer: true, perMessageDeflate: false, clientTracking: false } as const;
  const ctx: EmulatorContext = {
    options,
    namespace: new Namespace(
      options.manageKey,
      options.authorizationRules,
      options.hybridConnections,
      options.trustedIssuers,
    ),
    stats: new Stats(),
    faults: new FaultState(),
    logger,
    scheme: certs ? "wss" : "ws",
    controlServer: new WebSocketServer({
      ...wsCommon,
      maxPayload: options.maxControlFrameBytes,
      handleProtocols: () => false,
    }),
    relayServer: new WebSocketServer({
      ...wsCommon,
      maxPayload: options.maxMessageBytes,
      // The relay does not interpret payloads: invalid UTF-8 in a text frame is the peers' business.
      skipUTF8Validation: true,
      handleProtocols: (offered, req) => {
        const chosen = chosenProtocol.get(req);
        return chosen !== undefined && offered.has(chosen) ? chosen : false;
      },
    }),
    rendezvous: new Map(),
    pairs: new Set(),
    controlChannels: new Set(),
    pickListener: listenerPicker(options.distribution),
  };
  ctx.relayServer.on("headers", (headers: string[], req) => {
    const extra = extraResponseHeaders.get(req);
    if (extra) headers.push(...extra);
  });
  const stateFile = options.stateFile;
  if (stateFile) {
    loadNamespace(ctx.namespace, stateFile, options.manageKey);
    saveNamespace(ctx.namespace, stateFile);
  }
  const admin = stateFile
    ? persistingAdmin(createAdmin(ctx), () => saveNamespace(ctx.namespace, stateFile))
    : createAdmin(ctx);
  let port = 0;
  const portControl = {
    async closePort() {
      server.close();
      server.closeIdleConnections();
    },
    async reopenPort() {
      if (closed || server.listening) return;
      // The port was ours a moment ago; retry briefly in case the OS is slow to release it.
      for (let attempt = 0; ; attempt++) {
        try {
          await listen(server, port, options.host);
          return;
        } catch (err) {
          if (attempt >= 20) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    },
  };
  const faults = createFaults(ctx, portControl);
  const stats = (): RelayEmulatorStats =>
    ctx.stats.snapshot(ctx.namespace.list().map((hc) => ({ name: hc.name, listeners: hc.listeners.size })));
  wireServer(ctx, server, (req, res) => void handleAdmin(ctx, admin, faults, stats, req, res));
  port = await listen(server, options.port, options.host);
  const hostForUrl = options.host.includes(":") ? `[${options.host}]` : options.host;
  let closed = false;
  const rootRule = ctx.namespace.rules.get(ROOT_RULE_NAME)!;

  const emulator: RelayEmulator = {
    endpoint: `sb://${hostForUrl}:${port}`,
    url: `${ctx.scheme}://${hostForUrl}:${port}`,
    host: options.host,
    port,
    tls: options.tls,
    caFile: certs?.caFile,
    ca: certs?.caCert,
    manageKeyName: ROOT_RULE_NAME,
    get manageKey() {
      return rootRule.primaryKey;
    },
    admin,
    faults,
    stats,
    async close() {
      if (closed) return;
      closed = true;
      faults.dispose();
      for (const p of ctx.rendezvous.values()) {
        clearTimeout(p.timer);
        p.socket.destroy();
      }
      ctx.rendezvous.clear();
      for (const cc of [...ctx.controlChannels]) cc.terminate();
      for (const pair of [...ctx.pairs]) pair.cut("terminate");
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      ctx.controlServer.close();
      ctx.relayServer.close();
      if (tempDir) rmSync(tempDir, { recursive: true, force: true });
    },
  };
  logger.info({ url: emulator.url }, "relay emulator listening");
  return emulator;
}
