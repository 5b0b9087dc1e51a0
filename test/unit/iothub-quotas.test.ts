import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { HubQuotas, hubRates, restQuotaClass } from "../../sim/iothub-emulator/quotas.ts";

describe("IoT Hub emulator quotas", () => {
  test("the published throttles per SKU and unit count", () => {
    const s1 = hubRates("S1", 1);
    assert.equal(s1.registry * 60, 100);
    assert.equal(s1.connect, 100, "higher of 100/s or 12/s per unit");
    assert.equal(hubRates("S1", 9).connect, 108);
    assert.equal(s1.twinRead, 100);
    assert.equal(s1.twinUpdate, 50);
    assert.equal(Math.round(s1.query * 60), 20);
    const s3 = hubRates("S3", 2);
    assert.equal(Math.round(s3.registry * 60), 10_000);
    assert.equal(s3.connect, 12_000);
    assert.equal(hubRates("S2", 3).connect, 360);
  });

  test("a minute's registry budget passes at once, the next operation is refused, then refills", () => {
    let now = 0;
    const quotas = new HubQuotas("S1", 1, () => now);
    for (let i = 0; i < 100; i++) assert.ok(quotas.tryTake("registry"), `operation ${i + 1}`);
    assert.equal(quotas.tryTake("registry"), false);
    assert.throws(() => quotas.take("registry"), { name: "HubError", hubCode: "ThrottlingException" });
    now += 600; // 100 per minute: one more token every 0.6 s
    assert.ok(quotas.tryTake("registry"));
    assert.equal(quotas.tryTake("registry"), false);
    assert.deepEqual(quotas.counts.registry, { allowed: 101, throttled: 3 });
  });

  test("no SKU: nothing is throttled, everything is counted", () => {
    const quotas = new HubQuotas();
    for (let i = 0; i < 10_000; i++) quotas.take("connect");
    assert.deepEqual(quotas.counts.connect, { allowed: 10_000, throttled: 0 });
  });

  test("REST operations by class", () => {
    assert.equal(restQuotaClass("PUT", "/devices/d1"), "registry");
    assert.equal(restQuotaClass("GET", "/devices/d1/modules/m"), "registry");
    assert.equal(restQuotaClass("POST", "/devices/query"), "query");
    assert.equal(restQuotaClass("GET", "/twins/d1/modules/m"), "twinRead");
    assert.equal(restQuotaClass("PATCH", "/twins/d1"), "twinUpdate");
    assert.equal(restQuotaClass("PUT", "/configurations/base"), "configurations");
    assert.equal(restQuotaClass("POST", "/devices/d1/applyConfigurationContent"), "configurations");
    assert.equal(restQuotaClass("POST", "/twins/d1/methods"), undefined);
  });
});
