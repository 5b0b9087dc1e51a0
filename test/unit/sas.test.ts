import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { describe, it } from "node:test";
import fc from "fast-check";
import { audienceFor, createSasToken, parseSasToken, verifySasToken } from "../../lib/hyco/sas.ts";

const keysFor = (name: string) => (name === "listen" ? ["secret-key"] : undefined);

describe("sas", () => {
  it("verifies a token it created for the entity", () => {
    const token = createSasToken(audienceFor("sb://ns.example.net", "site-1"), "listen", "secret-key");
    const parsed = verifySasToken(token, { keysFor, entityPath: "site-1" });
    assert.equal(parsed.keyName, "listen");
  });

  it("accepts hyco-ws style audiences with port, upper-case escapes and $hc", () => {
    const token = createSasToken("http://NS.example.net:443/$hc/Site-1", "listen", "secret-key");
    assert.equal(verifySasToken(token, { keysFor, entityPath: "site-1/suffix" }).keyName, "listen");
  });

  it("verifies over the raw sr even when it uses lower-case escapes", () => {
    const good = createSasToken("http://ns/site-1/", "listen", "secret-key");
    const parsed = parseSasToken(good);
    assert.match(parsed.rawResource, /%3A%2F%2F/);
    // Re-sign by hand with a lower-case encoded sr, as the .NET docs example does.
    const lower = parsed.rawResource.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase());
    const sig = createHmac("sha256", "secret-key").update(`${lower}\n${parsed.expiresAt}`).digest("base64");
    const token = `SharedAccessSignature sr=${lower}&sig=${encodeURIComponent(sig)}&se=${parsed.expiresAt}&skn=listen`;
    assert.equal(verifySasToken(token, { keysFor, entityPath: "site-1" }).keyName, "listen");
  });

  it("rejects expired, forged, unknown-rule and wrong-path tokens with stable codes", () => {
    const aud = audienceFor("ns", "site-1");
    const expired = createSasToken(aud, "listen", "secret-key", { ttlSeconds: -1 });
    const forged = createSasToken(aud, "listen", "other-key");
    const unknown = createSasToken(aud, "nobody", "secret-key");
    const other = createSasToken(audienceFor("ns", "site-2"), "listen", "secret-key");
    const code = (token: string) => {
      try {
        verifySasToken(token, { keysFor, entityPath: "site-1" });
        return "ok";
      } catch (err) {
        return (err as { code: string; status: number }).code;
      }
    };
    assert.equal(code(expired), "RF_ERR_SAS_EXPIRED");
    assert.equal(code(forged), "RF_ERR_SAS_BAD_SIGNATURE");
    assert.equal(code(unknown), "RF_ERR_SAS_UNKNOWN_RULE");
    assert.equal(code(other), "RF_ERR_SAS_WRONG_AUDIENCE");
    assert.equal(code("Bearer abc"), "RF_ERR_SAS_MALFORMED");
  });

  it("never throws anything but a coded error on arbitrary input (property)", () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        for (const candidate of [s, `SharedAccessSignature ${s}`]) {
          try {
            verifySasToken(candidate, { keysFor, entityPath: "site-1" });
          } catch (err) {
            assert.match((err as { code: string }).code, /^RF_ERR_SAS_/);
          }
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("round-trips any rule name and resource (property)", () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.webSegment(), (keyName, path) => {
        const token = createSasToken(audienceFor("ns", path), keyName, "k");
        const parsed = parseSasToken(token);
        assert.equal(parsed.keyName, keyName);
        assert.equal(verifySasToken(token, { keysFor: () => ["k"], entityPath: path }).keyName, keyName);
      }),
    );
  });
});
