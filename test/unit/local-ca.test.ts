import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { describe, it } from "node:test";
import { createSecureContext } from "node:tls";
import { createLocalCertificates, newSerialNumber } from "../../lib/tls/local-ca.ts";

describe("local-ca", () => {
  it("issues a leaf for the given hosts that chains to the CA and loads into a TLS context", () => {
    const certs = createLocalCertificates(["127.0.0.2", "relay.local"]);
    const ca = new X509Certificate(certs.caCert);
    const leaf = new X509Certificate(certs.cert);
    assert.ok(leaf.verify(ca.publicKey));
    assert.ok(leaf.checkHost("relay.local"));
    assert.ok(leaf.checkIP("127.0.0.2"));
    assert.ok(leaf.checkIP("127.0.0.1"));
    createSecureContext({ cert: certs.cert, key: certs.key, ca: certs.caCert });
  });

  it("writes serial numbers as minimal positive DER integers (OpenSSL rejects 00 00 … padding)", () => {
    // A 00 00 prefix came up once in 256 certificates and made TLS servers fail to start, so the
    // generator is checked many times over (building 4,000 certificates would take minutes).
    for (let i = 0; i < 4_000; i++) {
      const first = Number.parseInt(newSerialNumber().slice(0, 2), 16);
      assert.ok(first >= 0x01 && first <= 0x7f, `serial starts ${first.toString(16)}`);
    }
    const leaf = new X509Certificate(createLocalCertificates().cert);
    assert.match(leaf.serialNumber, /^[0-7][0-9A-F]{31}$/);
  });
});
