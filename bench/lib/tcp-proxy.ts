/**
 * A plain TCP forwarder, one hop of the "proxy chain" baseline: what the same number of hops
 * costs with no relay protocol at all. `tsx bench/lib/tcp-proxy.ts <targetPort>` listens on a free
 * port and prints `{"event":"listening","port":N}`.
 */
import { connect, createServer } from "node:net";

const targetPort = Number(process.argv[2]);
const server = createServer({ noDelay: true }, (client) => {
  const upstream = connect({ host: "127.0.0.1", port: targetPort, noDelay: true });
  client.pipe(upstream);
  upstream.pipe(client);
  const destroy = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on("error", destroy);
  upstream.on("error", destroy);
});
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  process.stdout.write(
    `${JSON.stringify({ event: "listening", port: typeof address === "object" && address ? address.port : 0 })}\n`,
  );
});
process.on("SIGTERM", () => process.exit(0));
