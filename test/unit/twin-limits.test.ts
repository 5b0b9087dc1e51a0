import assert from "node:assert/strict";
import { test } from "node:test";
import {
  DesiredPropertiesSchema,
  fitReported,
  MAX_MAPPINGS,
  MAX_REPORTED_ERRORS,
  MAX_REPORTED_MAPPING_ERROR,
  type ReportedProperties,
  TWIN_MAX_DEPTH,
  TWIN_SECTION_LIMIT_BYTES,
  twinDepth,
  twinSizeBytes,
} from "../../lib/twin/index.ts";

const relay = {
  endpoint: "sb://contoso-relay-weu.servicebus.windows.net",
  hybridConnection: "site-0042",
  sasKeyName: "listen",
  sasKey: "x".repeat(44),
};

test("size rule: keys + values, numbers 8, booleans 4, $ keys ignored", () => {
  assert.equal(twinSizeBytes({ ab: "xyz", n: 1, b: true, $version: 3 }), 2 + 3 + 1 + 8 + 1 + 4);
  assert.equal(twinSizeBytes({ o: { k: "v" } }), 1 + 1 + 1);
});

test(`desired with ${MAX_MAPPINGS} fully specified mappings fits 32 KB with depth <= 10`, () => {
  const mappings = Object.fromEntries(
    Array.from({ length: MAX_MAPPINGS }, (_, i) => [
      `mapping${String(i).padStart(3, "0")}`,
      {
        target: "plc-controller.plant.local:44818",
        enabled: true,
        maxConnections: 50,
        connectTimeoutMs: 5000,
        idleTimeoutMs: 0,
        proxyProtocol: "forward",
      },
    ]),
  );
  // With the reconnect phase the rollout writes into every twin (ADR 0031).
  const desired = DesiredPropertiesSchema.parse({ relay, mappings, hubReconnect: { phase: 0.618034 } });
  assert.ok(twinSizeBytes(desired) < TWIN_SECTION_LIMIT_BYTES, String(twinSizeBytes(desired)));
  assert.ok(twinDepth(desired) <= TWIN_MAX_DEPTH);
});

function reported(n: number, nameLen: number, targetLen: number): ReportedProperties {
  const now = new Date().toISOString();
  return {
    schemaVersion: "1.0",
    moduleVersion: "0.1.0",
    appliedDesiredVersion: 12,
    status: "running",
    startedAt: now,
    updatedAt: now,
    relay: {
      status: "reconnecting",
      endpoint: relay.endpoint,
      hybridConnection: relay.hybridConnection,
      keyName: "listen",
      keyFingerprint: "0123456789abcdef",
      listeners: [0, 1, 2, 3].map((i) => ({
        id: String(i),
        status: "reconnecting",
        since: now,
        lastError: "e".repeat(160),
        nextAttemptAt: now,
      })),
    },
    mappings: Object.fromEntries(
      Array.from({ length: n }, (_, i) => [
        `${"m".repeat(nameLen - 3)}${String(i).padStart(3, "0")}`,
        {
          state: "error",
          target: `${"t".repeat(targetLen - 6)}:65535`,
          activeConnections: 1,
          totalConnections: 1,
          rejectedConnections: 1,
          bytesIn: 1,
          bytesOut: 1,
          lastError: "e".repeat(MAX_REPORTED_MAPPING_ERROR),
        },
      ]),
    ),
    errors: Array.from({ length: MAX_REPORTED_ERRORS }, () => ({
      path: `mappings.${"n".repeat(64)}.target`,
      message: "e".repeat(160),
    })),
  };
}

test(`reported with ${MAX_MAPPINGS} failing mappings (8-char names, IP targets) fits 32 KB untrimmed`, () => {
  const doc = reported(MAX_MAPPINGS, 8, 15);
  assert.ok(twinSizeBytes(doc) < TWIN_SECTION_LIMIT_BYTES - 1024, String(twinSizeBytes(doc)));
  assert.equal(fitReported(doc), doc);
  assert.ok(twinDepth(doc) <= TWIN_MAX_DEPTH);
});

test("pathological names and targets are trimmed to fit rather than rejected by IoT Hub", () => {
  const doc = reported(MAX_MAPPINGS, 64, 260);
  assert.ok(twinSizeBytes(doc) > TWIN_SECTION_LIMIT_BYTES);
  const fitted = fitReported(doc);
  assert.ok(twinSizeBytes(fitted) <= TWIN_SECTION_LIMIT_BYTES - 1024, String(twinSizeBytes(fitted)));
  assert.equal(Object.keys(fitted.mappings).length, MAX_MAPPINGS);
});
