/**
 * Three socat hops in a row, the baselines of the real-client benchmark, each hop its own socat
 * process with `fork` (one child per connection):
 *
 * - plaintext: TCP → TCP on every hop;
 * - TLS on the two relay legs, as the tunnel has them: hop 1 TCP → TLS, hop 2 TLS → TLS,
 *   hop 3 TLS → TCP (hop 1 stands for the gateway, hop 2 for the relay, hop 3 for the module).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { join } from "node:path";
import { freePort } from "../../sim/ports.ts";

export interface SocatChain {
  /** Where clients connect (hop 1). */
  port: number;
  /** The hop processes, in order (hop 1, hop 2, hop 3). */
  pids: number[];
  stop(): void;
}

/** A self-signed RSA-2048 certificate and key for the TLS hops, in `dir`. */
export function makeCertificate(openssl: string, dir: string): { cert: string; key: string } {
  const cert = join(dir, "socat-cert.pem");
  const key = join(dir, "socat-key.pem");
  execFileSync(
    openssl,
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-subj",
      "/CN=127.0.0.1",
      "-days",
      "2",
      "-keyout",
      key,
      "-out",
      cert,
    ],
    { stdio: "ignore" },
  );
  return { cert, key };
}

async function waitListening(port: number): Promise<void> {
  const { connect } = await import("node:net");
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ port, host: "127.0.0.1" });
      s.once("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`socat on ${port} did not start`);
}

export async function startSocatChain(
  socat: string,
  targetPort: number,
  tls?: { cert: string; key: string },
): Promise<SocatChain> {
  const ports = [await freePort(), await freePort(), await freePort()];
  const [p1, p2, p3] = ports as [number, number, number];
  const listenOpts = "bind=127.0.0.1,fork,reuseaddr,nodelay";
  const server = tls ? `cert=${tls.cert},key=${tls.key},verify=0` : "";
  const client = "verify=0,nodelay";
  const hops: string[][] = tls
    ? [
        [`TCP-LISTEN:${p1},${listenOpts}`, `OPENSSL:127.0.0.1:${p2},${client}`],
        [`OPENSSL-LISTEN:${p2},${listenOpts},${server}`, `OPENSSL:127.0.0.1:${p3},${client}`],
        [`OPENSSL-LISTEN:${p3},${listenOpts},${server}`, `TCP:127.0.0.1:${targetPort},nodelay`],
      ]
    : [
        [`TCP-LISTEN:${p1},${listenOpts}`, `TCP:127.0.0.1:${p2},nodelay`],
        [`TCP-LISTEN:${p2},${listenOpts}`, `TCP:127.0.0.1:${p3},nodelay`],
        [`TCP-LISTEN:${p3},${listenOpts}`, `TCP:127.0.0.1:${targetPort},nodelay`],
      ];
  const children: ChildProcess[] = hops.map((args) => spawn(socat, args, { stdio: "ignore" }));
  const stop = () => {
    for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  };
  try {
    for (const p of ports) await waitListening(p);
  } catch (err) {
    stop();
    throw err;
  }
  return { port: p1, pids: children.map((c) => c.pid as number), stop };
}
