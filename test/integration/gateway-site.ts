/**
 * A light stand-in for a site, for gateway tests where the site is incidental (several gateway
 * instances, circuit breaker, rate limits): built only from lib/hyco — `HybridConnectionListener`,
 * `readPreamble` / `answerPreamble` (lib/hyco/logical-port-listener.ts) and `pumpStreams` — forwarding each logical port name to a TCP
 * target on 127.0.0.1. Tests about what the site does (byte-exact transfer, TLS passthrough,
 * PROXY v2) run the real relayListener module instead (gateway-module.ts). A helper, not a test.
 */
import { connect, type Socket } from "node:net";
import type { WebSocket } from "ws";
import { HybridConnectionListener } from "../../lib/hyco/listener.ts";
import { answerPreamble, readPreamble } from "../../lib/hyco/logical-port-listener.ts";
import { pumpStreams } from "../../lib/hyco/pump.ts";
import type { CleanupContext } from "../helpers/index.ts";

export interface SiteListenerOptions {
  /** The relay's endpoint (`ws://127.0.0.1:<port>` for the plain emulator). */
  endpoint: string;
  hybridConnection: string;
  keyName: string;
  key: string;
  /** Logical port name → target port on 127.0.0.1. */
  targets: Record<string, number>;
}

export interface SiteListener {
  /** Relayed connections accepted so far. */
  accepted(): number;
  /** Times (epoch ms) of the listener's control-channel connect attempts. */
  attemptTimes(): number[];
  /** Times (epoch ms) the listener came online. */
  onlineTimes(): number[];
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
  const { portName } = await readPreamble(ws);
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
  await pumpStreams(ws, socket);
}

/** Starts the listener and resolves once the relay has it online. */
export async function startSiteListener(
  t: CleanupContext,
  options: SiteListenerOptions,
): Promise<SiteListener> {
  const listener = new HybridConnectionListener({
    endpoint: options.endpoint,
    hybridConnection: options.hybridConnection,
    keyName: options.keyName,
    key: options.key,
  });
  const open = new Set<WebSocket | Socket>();
  let accepted = 0;
  const attempts: number[] = [];
  const online: number[] = [];
  listener.on("attempt", () => attempts.push(Date.now()));
  listener.on("state", (s) => {
    if (s.status === "online") online.push(Date.now());
  });
  listener.on("accept", (request) => {
    accepted++;
    request.accept().then(
      (ws) => serve(ws, options.targets, open).catch(() => ws.terminate()),
      () => {},
    );
  });
  const close = async () => {
    await listener.close();
    for (const s of open) "terminate" in s ? s.terminate() : s.destroy();
  };
  t.after(close);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("site listener not online in 15 s")), 15_000);
    const onState = (state: { status: string }) => {
      if (state.status !== "online") return;
      clearTimeout(timer);
      listener.off("state", onState);
      resolve();
    };
    listener.on("state", onState);
    listener.start();
  });
  return {
    accepted: () => accepted,
    attemptTimes: () => [...attempts],
    onlineTimes: () => [...online],
    close,
  };
}
