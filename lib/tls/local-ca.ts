/**
 * A throwaway certificate authority for the local emulators, so every client keeps
 * `rejectUnauthorized` on and trusts the CA the documented ways (`ca` option,
 * `EdgeModuleCACertificateFile`, `NODE_EXTRA_CA_CERTS`).
 *
 * Node's crypto cannot build X.509 certificates, so node-forge assembles them; the RSA keys come
 * from Node's native generator because forge's pure-JS one takes seconds. Not `@peculiar/x509`:
 * it signs through WebCrypto, so making a CA would turn asynchronous for every emulator and test
 * that makes one now in a line, and it needs a global Reflect polyfill imported first in each of
 * those processes (it builds on tsyringe). node-forge is used here only, by the simulator and
 * tests, never in a runtime image (the image tests forbid it).
 */
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { isIP } from "node:net";
import { join } from "node:path";
import forge from "node-forge";

export interface LocalCertificates {
  /** PEM of the CA certificate: what clients trust. */
  caCert: string;
  /** PEM of the server's leaf certificate followed by the CA (a full chain). */
  cert: string;
  /** PEM of the leaf's private key. */
  key: string;
}

export interface LocalCertificateFiles extends LocalCertificates {
  caFile: string;
  certFile: string;
  keyFile: string;
}

function newKeyPair(): { privateKey: forge.pki.rsa.PrivateKey; publicKey: forge.pki.rsa.PublicKey } {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", {
    modulusLength: 2048,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });
  return {
    privateKey: forge.pki.privateKeyFromPem(privateKey) as forge.pki.rsa.PrivateKey,
    publicKey: forge.pki.publicKeyFromPem(publicKey) as forge.pki.rsa.PublicKey,
  };
}

/**
 * A random serial as hex, a positive DER INTEGER with no leading zero byte: OpenSSL rejects a
 * serial that starts 00 00 ("asn1 ... illegal padding"), which a fixed 00 prefix produced for one
 * certificate in 256.
 */
export function newSerialNumber(): string {
  const serial = randomBytes(16);
  serial[0] = ((serial[0] as number) & 0x7f) | 0x01;
  return serial.toString("hex");
}

function newCertificate(publicKey: forge.pki.PublicKey, validDays: number): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = newSerialNumber();
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + validDays * 86_400_000);
  return cert;
}

/**
 * Creates a CA and a server certificate for `hosts` (DNS names and IP addresses; localhost and
 * 127.0.0.1 are always included).
 */
export function createLocalCertificates(
  hosts: string[] = [],
  commonName = "Relay Fleet local CA",
): LocalCertificates {
  const caKeys = newKeyPair();
  const ca = newCertificate(caKeys.publicKey, 3650);
  const caSubject = [{ name: "commonName", value: commonName }];
  ca.setSubject(caSubject);
  ca.setIssuer(caSubject);
  ca.setExtensions([
    { name: "basicConstraints", cA: true, critical: true },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true },
    { name: "subjectKeyIdentifier" },
  ]);
  ca.sign(caKeys.privateKey, forge.md.sha256.create());

  const names = [...new Set(["localhost", "127.0.0.1", "::1", ...hosts])];
  const leafKeys = newKeyPair();
  const leaf = newCertificate(leafKeys.publicKey, 825);
  leaf.setSubject([{ name: "commonName", value: names[0] ?? "localhost" }]);
  leaf.setIssuer(caSubject);
  leaf.setExtensions([
    { name: "basicConstraints", cA: false },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
    { name: "extKeyUsage", serverAuth: true },
    {
      name: "subjectAltName",
      altNames: names.map((n) => (isIP(n) ? { type: 7, ip: n } : { type: 2, value: n })),
    },
  ]);
  leaf.sign(caKeys.privateKey, forge.md.sha256.create());

  const caCert = forge.pki.certificateToPem(ca);
  return {
    caCert,
    cert: forge.pki.certificateToPem(leaf) + caCert,
    key: forge.pki.privateKeyToPem(leafKeys.privateKey),
  };
}

/** Creates the certificates and writes them as `ca.pem`, `server.pem` and `server-key.pem` in `dir`. */
export function writeLocalCertificates(
  dir: string,
  hosts: string[] = [],
  commonName?: string,
): LocalCertificateFiles {
  mkdirSync(dir, { recursive: true });
  const certs = createLocalCertificates(hosts, commonName);
  const files = {
    caFile: join(dir, "ca.pem"),
    certFile: join(dir, "server.pem"),
    keyFile: join(dir, "server-key.pem"),
  };
  writeFileSync(files.caFile, certs.caCert);
  writeFileSync(files.certFile, certs.cert);
  writeFileSync(files.keyFile, certs.key, { mode: 0o600 });
  return { ...certs, ...files };
}
