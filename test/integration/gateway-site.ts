/**
 * A light stand-in for a site, for gateway tests where the site is incidental (several gateway
 * instances, circuit breaker, rate limits): the module's own listener factory (its control
 * channels, each on its retry slot, ADR 0013) with lib/hyco's `readPreamble` / `answerPreamble`
 * (lib/hyco/logical-port-listener.ts) and `startPump`, forwarding each logical port name to a
 * TCP target on 127.0.0.1. Tests about what the site does (byte-exact transfer, TLS passthrough,
 * PROXY v2) run the real relayListener module instead. A helper, not a test.
 */
import { connect, type Socket } from "node:net";
import type { WebSocket } from "ws";
import { RETRY_PERIOD_MS } from "../../lib/hyco/constants.ts";
import type { HybridConnectionListener } from "../../lib/hyco/listener.ts";
import { answerPreamble, readPreamble } from "../../lib/hyco/logical-port-listener.ts";
import { startPump } from "../../lib/hyco/pump.ts";
import { createLogger } from "../../lib/log.ts";
import { createListenerFactory } from "../../modules/relayListener/src/listener-factory.ts";
import type { CleanupContext } from "../helpers/index.ts";

export interface SiteListenerOptions {
  /** The relay's endpoint (`ws://127.0.0.1:<port>` for the plain emulator). */
  endpoint: string;
  hybridConnection: string;
  keyName: string;
  key: string;
  /** Logical port name → target port on 127.0.0.1. */
  targets: Record<string, number>;
  /** Control channels, as the module's `RELAY_LISTENER_COUNT` (default 1). */
  channels?: number;
}

export interface SiteListener {
  /** Relayed connections accepted so far. */
  accepted(): number;
  /** Times (performance.now(), the clock of the retry slots) of each channel's connect attempts. */
  attemptTimes(channel?: number): number[];
  /** Times (performance.now()) any channel came online. */
  onlineTimes(): number[];
  /** Each channel's retry slot. */
  retrySlots(): Array<{ periodMs: number; phase: number }>;
  close(): Promise<void>;
}

function connectTarget(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: "127.0.0.1", noDelay: true });
    socket.once("connect", () => {
      socket.off("error", reject);
      socket.on("error", () => {}); // the pump reports it
      resolve(socket);
    });
    socket.once("error", reject);
  });
}

async function serve(ws: WebSocket, targets: Record<string, number>, open: Set<WebSocket | Socket>) {
  open.add(ws);
  ws.once("close", () => open.delete(ws));
  const { portName, reader } = await readPreamble(ws);
  const port = targets[portName];
  if (port === undefined) return answerPreamble(ws, false);
  let socket: Socket;
  try {
    socket = await connectTarget(port);
  } catch {
    return answerPreamble(ws, false);
  }
  open.add(socket);
  socket.once("close", () => open.delete(socket));
  answerPreamble(ws, true);
  await startPump(ws, socket, { initialData: reader.release() }).done;
}

/** Starts the site's channels and resolves once the relay has every one online. */
export async function startSiteListener(
  t: CleanupContext,
  options: SiteListenerOptions,
): Promise<SiteListener> {
  const count = options.channels ?? 1;
  const factory = createListenerFactory({
    ca: undefined,
    count,
    retryPeriodMs: RETRY_PERIOD_MS,
    logger: createLogger("site", { level: "silent" }),
  });
  const relay = {
    endpoint: options.endpoint,
    hybridConnection: options.hybridConnection,
    sasKeyName: options.keyName,
    sasKey: options.key,
  } as Parameters<typeof factory>[0];
  // The factory builds lib/hyco listeners; the attempt events are theirs.
  const listeners = Array.from(
    { length: count },
    (_, i) => factory(relay, i) as unknown as HybridConnectionListener,
  );
  const open = new Set<WebSocket | Socket>();
  let accepted = 0;
  const attempts: number[][] = listeners.map(() => []);
  const online: number[] = [];
  for (const [i, listener] of listeners.entries()) {
    listener.on("attempt", () => attempts[i]?.push(performance.now()));
    listener.on("state", (s) => {
      if (s.status === "online") online.push(performance.now());
    });
    listener.on("accept", (request) => {
      accepted++;
      request.accept().then(
        (ws) => serve(ws, options.targets, open).catch(() => ws.terminate()),
        () => {},
      );
    });
  }
  const close = async () => {
    await Promise.all(listeners.map((l) => l.close()));
    for (const s of open) "terminate" in s ? s.terminate() : s.destroy();
  };
  t.after(close);
  await Promise.all(
    listeners.map(
      (listener) =>
        new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error("site listener not online in 15 s")), 15_000);
          const onState = (state: { status: string }) => {
            if (state.status !== "online") return;
            clearTimeout(timer);
            listener.off("state", onState);
            resolve();
          };
          listener.on("state", onState);
          listener.start();
        }),
    ),
  );
  return {
    accepted: () => accepted,
    attemptTimes: (channel?: number) =>
      channel === undefined ? attempts.flat().sort((a, b) => a - b) : [...(attempts[channel] ?? [])],
    onlineTimes: () => [...online],
    retrySlots: () => listeners.map((l) => l.retrySlot),
    close,
  };
}
