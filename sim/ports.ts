/**
 * Free ports for the simulation. Parts that can bind port 0 do; these helpers serve the two that
 * cannot: the rollout API, whose URL the IoT Hub emulator needs before either starts, and the
 * block of public ports the rollout service allocates from and the gateways then bind.
 */
import { createServer } from "node:net";
import { LINUX_EPHEMERAL_RANGE } from "../lib/ledger/port-ranges.ts";

/** Lowest port of a simulation's public block (clear of well-known and registered services below). */
const BLOCK_FLOOR = 22_000;

/**
 * Where a server whose port is fixed before it starts takes one: below the public blocks and the
 * deployments' default public range (21000-21999), and below Linux's ephemeral range.
 */
const SERVER_PORTS = { from: 15_000, to: 19_999 };

function tryListen(port: number, host: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(undefined));
    server.listen({ port, host, exclusive: true }, () => {
      const address = server.address();
      const bound = typeof address === "object" && address ? address.port : undefined;
      server.close(() => resolve(bound));
    });
  });
}

/** True when `port` can be bound on `host` right now. */
export async function isPortFree(port: number, host = "127.0.0.1"): Promise<boolean> {
  return (await tryListen(port, host)) !== undefined;
}

/** A port that was free a moment ago on `host`. */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  const port = await tryListen(0, host);
  if (port === undefined) throw new Error(`no free port on ${host}`);
  return port;
}

/**
 * A port for a server whose address must be known before it starts and kept across its restarts
 * (the rollout API, whose URL the IoT Hub emulator needs first). Not a port 0 answer: that lies in
 * the ephemeral range, where any process's outgoing connection can take it before the server
 * binds (seen in CI: the rollout API failed with EADDRINUSE while the emulators started). Not in
 * the public blocks either, which other simulations' gateways bind.
 */
export async function freeServerPort(host = "127.0.0.1", attempts = 50): Promise<number> {
  for (let attempt = 0; attempt < attempts; attempt++) {
    const port = SERVER_PORTS.from + Math.floor(Math.random() * (SERVER_PORTS.to - SERVER_PORTS.from + 1));
    if ((await tryListen(port, host)) !== undefined) return port;
  }
  throw new Error(`no free server port on ${host} in ${SERVER_PORTS.from}-${SERVER_PORTS.to}`);
}

/**
 * Finds `size` consecutive ports free on every host in `hosts`, starting at a random base so that
 * simulations and tests running side by side rarely collide (the gateways retry a port that is
 * taken later, so a rare collision delays a route, it does not break one). The block lies below
 * Linux's ephemeral range (32768-60999): there the processes' own outgoing connections would take
 * public ports before a gateway could listen on them.
 */
export async function freePortBlock(
  size: number,
  hosts: string[] = ["127.0.0.1"],
  attempts = 50,
): Promise<{ from: number; to: number }> {
  for (let attempt = 0; attempt < attempts; attempt++) {
    const from = BLOCK_FLOOR + Math.floor(Math.random() * (LINUX_EPHEMERAL_RANGE.from - BLOCK_FLOOR - size));
    let ok = true;
    for (let port = from; ok && port < from + size; port++) {
      for (const host of hosts) {
        if ((await tryListen(port, host)) === undefined) {
          ok = false;
          break;
        }
      }
    }
    if (ok) return { from, to: from + size - 1 };
  }
  throw new Error(`no block of ${size} free ports found`);
}
