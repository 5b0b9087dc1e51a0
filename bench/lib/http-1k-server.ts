/**
 * The HTTP target of the real-client benchmark, a process of its own: every request is answered
 * with 1 KiB. Prints `{"event":"listening","port":N}`.
 */
import { createServer } from "node:http";

const body = Buffer.alloc(1024, "x");
const server = createServer((_req, res) => {
  res.writeHead(200, { "content-type": "text/plain", "content-length": body.length });
  res.end(body);
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  process.stdout.write(`${JSON.stringify({ event: "listening", port })}\n`);
});
process.on("SIGTERM", () => process.exit(0));
