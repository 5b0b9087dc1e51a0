/**
 * Helpers of the end-to-end tests: a whole local fleet (sim/fleet.ts, every part a real process on
 * loopback) per test file, stopped and checked for leftover processes when the file ends, and
 * TCP clients that prove byte-exactness (SHA-256 of a pseudo-random stream each way).
 */
import { createCipheriv, createHash, randomBytes } from "node:crypto";
import { get as httpGet } from "node:http";
import { connect, createServer, type Socket } from "node:net";
import { Fleet, type FleetOptions } from "../../sim/fleet.ts";
import { type CleanupContext, tempDir, waitFor } from "./index.ts";

/**
 * Module timers shortened for tests. The relay listeners keep the module's production reconnect
 * period (6 s, ADR 0013): the reconnect-rate test measures the rate a site really runs with.
 */
export const E2E_MODULE_ENV: NodeJS.ProcessEnv = {
  REPORT_INTERVAL_MS: "250",
  SHUTDOWN_DRAIN_MS: "1000",
  TWIN_TIMEOUT_MS: "5000",
  LOG_LEVEL: "info",
};

/**
 * A cleanup context for a whole test file: node:test's top-level `after()` must be called while
 * the file loads (called later, from a `before` hook, it attaches to whichever test runs then).
 * `const scope = fileScope(after)` at the top, then pass `scope` where a `t` would go.
 */
export function fileScope(register: (fn: () => Promise<void>) => void): CleanupContext {
  const fns: Array<() => unknown> = [];
  register(async () => {
    const errors: unknown[] = [];
    for (const fn of fns) {
      try {
        await fn();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length > 0) throw errors[0];
  });
  return { after: (fn) => fns.push(fn) };
}

/** True while a process with this pid exists. */
export function alive(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts a fleet in a temp dir; when the test (or file, for a `{ after }` context) ends it is
 * stopped, and it is an error if any process it ever started is still alive.
 */
export async function startE2eFleet(
  ctx: CleanupContext,
  options: Omit<FleetOptions, "stateDir"> = {},
): Promise<Fleet> {
  let fleet: Fleet | undefined;
  // Registered before tempDir: hooks run in order, so the fleet stops before its dir goes.
  ctx.after(async () => {
    if (!fleet) return;
    await fleet.stop();
    const left = fleet.processes.filter((p) => alive(p.child.pid)).map((p) => `${p.name} (${p.child.pid})`);
    if (left.length > 0) throw new Error(`processes left behind: ${left.join(", ")}`);
  });
  const stateDir = tempDir(ctx, "relay-fleet-e2e-");
  fleet = await Fleet.start({
    stateDir,
    ledgerReloadMs: 500,
    ...options,
    moduleEnv: { ...E2E_MODULE_ENV, ...options.moduleEnv },
  });
  return fleet;
}

/** A deterministic pseudo-random byte stream (AES-128-CTR keystream: fast, never repeats). */
export function keystream(seed: Buffer = randomBytes(16)): (n: number) => Buffer {
  const cipher = createCipheriv("aes-128-ctr", seed, Buffer.alloc(16));
  return (n) => cipher.update(Buffer.alloc(n));
}

export function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Connects, resolving once the TCP connection is up. */
export function connectTcp(port: number, host = "127.0.0.1"): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host, allowHalfOpen: true });
    socket.once("connect", () => {
      socket.removeListener("error", reject);
      resolve(socket);
    });
    socket.once("error", reject);
  });
}

/**
 * Sends `data` to an echo service and reads until as many bytes came back (not relying on
 * half-close), then closes. Rejects when the connection ends or fails early, or on timeout.
 */
export async function echoExact(
  port: number,
  data: Buffer,
  host = "127.0.0.1",
  timeoutMs = 60_000,
): Promise<Buffer> {
  const socket = await connectTcp(port, host);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const timer = setTimeout(
      () => fail(new Error(`echo of ${data.length} B timed out after ${got} B`)),
      timeoutMs,
    );
    const fail = (err: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    socket.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      got += chunk.length;
      if (got >= data.length) {
        clearTimeout(timer);
        socket.end();
        socket.destroy();
        resolve(Buffer.concat(chunks));
      }
    });
    socket.once("error", fail);
    socket.once("close", () => {
      if (got < data.length) fail(new Error(`connection closed after ${got} of ${data.length} B`));
    });
    socket.write(data);
  });
}

export interface DuplexResult {
  sentBytes: number;
  receivedBytes: number;
  sentSha: string;
  receivedSha: string;
  /** How the connection ended: "end" (FIN after everything) or the error. */
  ending: string;
}

export interface RunningTransfer {
  /** Bytes written so far. */
  sent(): number;
  /** Bytes read back so far. */
  received(): number;
  /** Stops sending, half-closes, and resolves when the echo of every byte and the FIN arrived. */
  finish(): Promise<DuplexResult>;
  /** Settles when the transfer ended (by finish or by a failure). */
  done: Promise<DuplexResult>;
}

/**
 * Streams pseudo-random data to an echo service while reading the echo back, both at once, with
 * backpressure; `totalBytes` ends it by itself, `finish()` ends it early. `bytesPerSecond` paces a
 * long-running transfer (so it spans a rollout step without hogging the CPU).
 */
export async function startEchoTransfer(
  port: number,
  opts: { totalBytes?: number; bytesPerSecond?: number; chunkBytes?: number; host?: string } = {},
): Promise<RunningTransfer> {
  const socket = await connectTcp(port, opts.host);
  const chunkBytes = opts.chunkBytes ?? 256 * 1024;
  const total = opts.totalBytes ?? Number.POSITIVE_INFINITY;
  const next = keystream();
  const sentHash = createHash("sha256");
  const receivedHash = createHash("sha256");
  let sent = 0;
  let received = 0;
  let stopping = false;
  let ended = false;
  const started = Date.now();
  let resolveDone!: (r: DuplexResult) => void;
  const done = new Promise<DuplexResult>((r) => {
    resolveDone = r;
  });
  const settle = (ending: string) => {
    if (ended) return;
    ended = true;
    resolveDone({
      sentBytes: sent,
      receivedBytes: received,
      sentSha: sentHash.digest("hex"),
      receivedSha: receivedHash.digest("hex"),
      ending,
    });
  };
  socket.on("data", (chunk: Buffer) => {
    receivedHash.update(chunk);
    received += chunk.length;
  });
  socket.once("end", () => settle(received === sent && (stopping || sent >= total) ? "end" : "early end"));
  socket.once("error", (err) => settle(`error: ${err.message}`));
  socket.once("close", () => settle("close without end"));

  const pump = () => {
    if (ended) return;
    while (!stopping && sent < total) {
      if (opts.bytesPerSecond) {
        const allowed = ((Date.now() - started) / 1000) * opts.bytesPerSecond + chunkBytes;
        if (sent >= allowed) {
          setTimeout(pump, 20);
          return;
        }
      }
      const chunk = next(Math.min(chunkBytes, total - sent));
      sentHash.update(chunk);
      sent += chunk.length;
      if (!socket.write(chunk)) {
        socket.once("drain", pump);
        return;
      }
    }
    if (!socket.writableEnded) socket.end();
  };
  pump();
  return {
    sent: () => sent,
    received: () => received,
    finish() {
      // The pump, waiting on its pacing timer or on drain, ends the stream when it wakes up.
      stopping = true;
      return done;
    },
    done,
  };
}

/** GET / over a fresh connection (no keep-alive pool holding relayed connections open). */
export function httpText(
  port: number,
  host = "127.0.0.1",
  timeoutMs = 10_000,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpGet({ host, port, path: "/", agent: false, timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (c: string) => {
        body += c;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${host}:${port} timed out`)));
    req.on("error", reject);
  });
}

/** Resolves true when a GET through the public port answers with the site's page. */
export async function siteServes(port: number, siteId: string, host = "127.0.0.1"): Promise<boolean> {
  try {
    const r = await httpText(port, host, 5_000);
    return r.status === 200 && r.body.includes(`Hello from site ${siteId}`);
  } catch {
    return false;
  }
}

/** An on-prem service of the test's own: it greets with a banner only it sends, then echoes. */
export async function bannerService(t: CleanupContext): Promise<{ port: number; banner: string }> {
  const banner = `svc-${randomBytes(6).toString("hex")}\n`;
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on("error", () => s.destroy());
    s.once("close", () => sockets.delete(s));
    s.write(banner);
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return { port: (server.address() as { port: number }).port, banner };
}

/** Waits until `siteId`'s demo web page answers through its public port on gateway `host`. */
export async function waitForSiteServing(fleet: Fleet, siteId: string, host = "127.0.0.1"): Promise<void> {
  await waitFor(
    () => siteServes(fleet.sites.get(siteId)?.publicPorts.web ?? 0, siteId, host),
    `${siteId} serves through ${host}`,
    { timeoutMs: 20_000 },
  );
}
