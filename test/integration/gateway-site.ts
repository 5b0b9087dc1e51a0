/**
 * Test stand-in for a site, used by the gateway tests until they run the real module: a Hybrid
 * Connections listener built from raw ws@8 + lib/hyco's preamble codec and pump, forwarding each
 * logical port name to a local TCP target. Not a test file (no `.test.ts`): a helper.
 */
import { connect, type Socket } from "node:net";
import WebSocket from "ws";
import { encodeReplyOk, PreambleParser } from "../../lib/hyco/preamble.ts";
import { pumpStreams } from "../../lib/hyco/pump.ts";
import { audienceFor, createSasToken } from "../../lib/hyco/sas.ts";
import type { CleanupContext } from "../helpers/index.ts";

export interface SiteListenerOptions {
  /** `ws://127.0.0.1:<port>` of the relay emulator. */
  url: string;
  endpoint: string;
  hybridConnection: string;
  keyName: string;
  key: string;
  /** Logical port name → target port on 127.0.0.1. */
  targets: Record<string, number>;
}

export interface SiteListener {
  /** Connections accepted so far. */
  accepted(): number;
  close(): void;
}

/** Opens the control channel and resolves once the relay has registered it. */
export function startSiteListener(t: CleanupContext, options: SiteListenerOptions): Promise<SiteListener> {
  const token = createSasToken(
    audienceFor(options.endpoint, options.hybridConnection),
    options.keyName,
    options.key,
    {
      ttlSeconds: 7200,
    },
  );
  const control = new WebSocket(`${options.url}/$hc/${options.hybridConnection}?sb-hc-action=listen`, {
    headers: { ServiceBusAuthorization: token },
    perMessageDeflate: false,
  });
  const open = new Set<WebSocket | Socket>();
  let accepted = 0;
  const close = () => {
    control.terminate();
    for (const s of open) s instanceof WebSocket ? s.terminate() : s.destroy();
  };
  t.after(close);
  control.on("message", (data, isBinary) => {
    if (isBinary) return;
    const msg = JSON.parse(String(data)) as { accept?: { address: string } };
    if (!msg.accept) return;
    accepted++;
    const ws = new WebSocket(msg.accept.address, { perMessageDeflate: false, maxPayload: 0 });
    open.add(ws);
    ws.on("close", () => open.delete(ws));
    ws.on("error", () => {});
    const parser = new PreambleParser();
    const early: Buffer[] = [];
    let named = false;
    const onMessage = (raw: WebSocket.RawData) => {
      const chunk = Buffer.isBuffer(raw) ? raw : Buffer.concat(raw as Buffer[]);
      if (named) {
        early.push(chunk);
        return;
      }
      const step = parser.push(chunk);
      if (!step.done) return;
      named = true;
      if (step.rest.length) early.push(step.rest);
      const port = options.targets[step.value.portName];
      if (port === undefined) {
        ws.close(1000, "no such port");
        return;
      }
      const socket = connect(port, "127.0.0.1");
      open.add(socket);
      socket.on("close", () => open.delete(socket));
      socket.on("error", () => ws.terminate());
      socket.once("connect", () => {
        ws.off("message", onMessage);
        ws.send(encodeReplyOk());
        void pumpStreams(ws, socket, { initialData: early });
      });
    };
    ws.on("message", onMessage);
  });
  return new Promise((resolve, reject) => {
    control.once("open", () => resolve({ accepted: () => accepted, close }));
    control.once("error", reject);
    control.once("unexpected-response", (_req, res) =>
      reject(new Error(`listen refused: ${res.statusCode}`)),
    );
  });
}
