/**
 * The IoT Edge workload API subset the device SDK uses in `IOTEDGE_*` mode (iothub-protocol.md §2):
 * `GET /trust-bundle` and `POST /modules/{m}/genid/{g}/sign`, on plain HTTP like edgelet's
 * socket. The module is found by id + generation id, which is unique per module incarnation.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { signWithKey } from "../auth.ts";
import type { Hub } from "../hub.ts";
import { listenOn } from "../listen.ts";
import { isJsonObject, tryParseJson } from "../state/json.ts";

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res
    .writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) })
    .end(text);
}

export interface WorkloadServer {
  port: number;
  close(): Promise<void>;
}

export async function startWorkloadServer(opts: {
  hub: Hub;
  caCert: string;
  host: string;
  port: number;
}): Promise<WorkloadServer> {
  const handle = (req: IncomingMessage, res: ServerResponse, text: string) => {
    const url = new URL(req.url ?? "/", "http://workload");
    if (req.method === "GET" && url.pathname === "/trust-bundle")
      return send(res, 200, { certificate: opts.caCert });
    const m = /^\/modules\/([^/]+)\/genid\/([^/]+)\/sign$/.exec(url.pathname);
    if (req.method !== "POST" || !m) return send(res, 404, { message: "not found" });
    const moduleId = decodeURIComponent(m[1]!);
    const genId = decodeURIComponent(m[2]!);
    const parsed = tryParseJson(text);
    const body = parsed.ok && isJsonObject(parsed.value) ? parsed.value : undefined;
    if (!body || typeof body.data !== "string" || body.algo !== "HMACSHA256")
      return send(res, 400, { message: 'body must be {"keyId","algo":"HMACSHA256","data":"<base64>"}' });
    for (const dev of opts.hub.store.devices.values()) {
      const mod = dev.modules[moduleId];
      if (mod && mod.generationId === genId) {
        const key = body.keyId === "secondary" ? mod.secondaryKey : mod.primaryKey;
        return send(res, 200, { digest: signWithKey(key, Buffer.from(body.data, "base64")) });
      }
    }
    return send(res, 404, { message: `module ${moduleId} with generation ${genId} not found` });
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > 64 * 1024) req.destroy();
      else chunks.push(c);
    });
    req.on("end", () => handle(req, res, Buffer.concat(chunks).toString("utf8")));
    req.on("error", () => undefined);
  });
  server.on("clientError", (_err, socket) => socket.destroy());
  const port = await listenOn(server, opts.port, opts.host);
  return {
    port,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
