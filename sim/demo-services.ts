/**
 * The on-prem services of a simulated site, "behind the firewall": a small web page and a TCP
 * echo, both on loopback ports that only the site's relay module is allowed to reach.
 */
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer as createTcpServer, type Socket, type Server as TcpServer } from "node:net";

export interface DemoServices {
  siteId: string;
  webPort: number;
  echoPort: number;
  close(): Promise<void>;
}

function listen(server: HttpServer | TcpServer, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      resolve(typeof address === "object" && address ? address.port : 0);
    });
  });
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(siteId: string, shared: boolean): string {
  const name = escapeHtml(siteId);
  const note = shared
    ? "<p>It comes from the demo service of the default site profile, which every site added with the CLI shares; it names the site by the public port you used.</p>\n"
    : "";
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>Site ${name}</title></head>
<body><h1>Hello from site ${name}</h1>
<p>This page is served inside the site's network and reached through the gateway, Azure Relay and the site's relayListener module.</p>
${note}</body></html>
`;
}

/**
 * Starts the web page and the echo service of one site on `host` (loopback). Services shared by
 * several sites pass `siteForPort`: the public port in the request's Host header (the gateway
 * passes bytes through untouched) tells which site the visitor asked for.
 */
export async function startDemoServices(
  siteId: string,
  host = "127.0.0.1",
  siteForPort?: (publicPort: number) => string | undefined,
): Promise<DemoServices> {
  const sockets = new Set<Socket>();
  const web = createHttpServer((req, res) => {
    const port = Number(/:(\d+)$/.exec(req.headers.host ?? "")?.[1]);
    const name = (siteForPort && Number.isInteger(port) ? siteForPort(port) : undefined) ?? siteId;
    const body = page(name, siteForPort !== undefined);
    res.writeHead(200, { "content-type": "text/html; charset=utf-8", "x-relay-fleet-site": name });
    res.end(req.method === "HEAD" ? undefined : body);
  });
  const echo = createTcpServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on("error", () => socket.destroy());
    socket.once("close", () => sockets.delete(socket));
    // Echo everything, and finish our side once the client has finished its (half-close).
    socket.pipe(socket);
  });
  const [webPort, echoPort] = await Promise.all([listen(web, host), listen(echo, host)]);
  return {
    siteId,
    webPort,
    echoPort,
    async close() {
      for (const s of sockets) s.destroy();
      web.closeAllConnections();
      await Promise.all([new Promise((r) => web.close(r)), new Promise((r) => echo.close(r))]);
    },
  };
}
