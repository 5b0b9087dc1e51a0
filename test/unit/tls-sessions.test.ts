import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { createServer, type Server, type TLSSocket } from "node:tls";
import { clearTlsSessions, connectWithSessionReuse, sharedTlsContext } from "../../lib/hyco/tls-sessions.ts";
import { createLocalCertificates } from "../../lib/tls/local-ca.ts";

const trusted = createLocalCertificates();
const stranger = createLocalCertificates([], "Some other CA");
let server: Server;
let port: number;

before(async () => {
  server = createServer({ cert: trusted.cert, key: trusted.key }, (socket) => socket.end("hello"));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
});
after(() => {
  clearTlsSessions();
  server.close();
});

function connect(ca: string): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = connectWithSessionReuse({ host: "127.0.0.1", port, ca });
    socket.once("secureConnect", () => {
      // The session ticket arrives with the first read in TLS 1.3: read to the end.
      socket.resume();
      socket.once("end", () => resolve(socket));
    });
    socket.once("error", reject);
  });
}

test("one TLS context per trust anchor, only where the options ask for nothing beyond a CA", () => {
  const first = sharedTlsContext({ ca: trusted.caCert });
  assert.ok(first);
  assert.equal(sharedTlsContext({ ca: `${trusted.caCert}` }), first, "the same PEM text shares the context");
  assert.notEqual(sharedTlsContext({ ca: stranger.caCert }), first, "another CA gets its own");
  assert.equal(sharedTlsContext({}), undefined, "no CA: Node's default roots, untouched");
  assert.equal(
    sharedTlsContext({ ca: trusted.caCert, minVersion: "TLSv1.3" }),
    undefined,
    "own settings win",
  );
});

test("the shared context still verifies the server: the right CA connects and resumes, another CA is refused", async () => {
  const first = await connect(trusted.caCert);
  assert.equal(first.authorized, true);
  const second = await connect(trusted.caCert);
  assert.equal(second.authorized, true);
  assert.equal(second.isSessionReused(), true, "second connection resumed the first one's session");
  await assert.rejects(connect(stranger.caCert), /self[- ]signed|unable to verify|certificate/i);
});
