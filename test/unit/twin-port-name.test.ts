/**
 * azbridge port names (issue 11, item 21): a mapping may answer to a logical port name in
 * azbridge's alphabet (letters, digits, `/ _ - .`) that twin keys cannot hold, through the twin
 * contract's optional `portName` (lib/twin); the rollout writes it to the twin and to the route
 * row (`logicalPort`, what the gateway sends); one logical port names one mapping.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { buildDesired } from "../../cloud/functions/src/rollout/desired-twin.ts";
import { mappingSpecSchema, updateMappingBodySchema } from "../../cloud/functions/src/rollout/schemas.ts";
import { validateDesiredForWrite } from "../../cloud/functions/src/rollout/validate-desired.ts";
import { parseRouteRow } from "../../lib/ledger/read-routes.ts";
import { routeToEntity } from "../../lib/ledger/schema.ts";
import {
  DesiredPropertiesSchema,
  defaultConfig,
  diffConfig,
  logicalPortOf,
  MappingSchema,
  validateDesired,
} from "../../lib/twin/index.ts";

const relay = { endpoint: "sb://r.example", hybridConnection: "site-x", sasKeyName: "listen", sasKey: "k" };
/** Port names azbridge accepts (its Constants.RelayNameRegex: ^[0-9A-Za-z/_\-\.]+$). */
const AZBRIDGE_NAMES = ["rdp.main", "plant/ssh", "db_1", "web-2.example.com", "13389", "A.b/C_d-e"];

describe("logical port names (azbridge's alphabet)", () => {
  test("the twin contract accepts azbridge's port names in portName and refuses the rest, saying why", () => {
    for (const portName of AZBRIDGE_NAMES)
      assert.equal(MappingSchema.safeParse({ target: "10.0.0.5:3389", portName }).success, true, portName);
    for (const portName of ["", "rdp main", "rdp$", "a:b", "ä", "x".repeat(256)]) {
      const parsed = MappingSchema.safeParse({ target: "10.0.0.5:3389", portName });
      assert.equal(parsed.success, false, JSON.stringify(portName));
      assert.match(parsed.error?.issues[0]?.message ?? "", /A-Z a-z 0-9 \/ _ - \./);
    }
    // The mapping's name stays a twin key: '.' is still refused there.
    assert.equal(
      DesiredPropertiesSchema.safeParse({ mappings: { "rdp.main": { target: "10.0.0.5:1" } } }).success,
      false,
    );
  });

  test("the logical port is portName, or else the mapping's name", () => {
    assert.equal(logicalPortOf("rdp_main", { portName: "rdp.main" }), "rdp.main");
    assert.equal(logicalPortOf("ssh", {}), "ssh");
  });

  test("two mappings cannot answer to one logical port: refused whole, and the validator keeps the first", () => {
    const clash = {
      relay,
      mappings: {
        a: { target: "10.0.0.1:22", portName: "b" },
        b: { target: "10.0.0.2:22" },
        c: { target: "10.0.0.3:22", portName: "x.y" },
        d: { target: "10.0.0.4:22", portName: "x.y" },
      },
    };
    const whole = DesiredPropertiesSchema.safeParse(clash);
    assert.equal(whole.success, false);
    assert.deepEqual(whole.error?.issues.map((i) => i.path.join(".")).sort(), [
      "mappings.b.portName",
      "mappings.d.portName",
    ]);
    // The module applies what it can: by name order the first holder keeps the port.
    const { config, errors } = validateDesired(clash, defaultConfig());
    assert.deepEqual(Object.keys(config.mappings).sort(), ["a", "c"]);
    assert.deepEqual(errors.map((e) => e.path).sort(), ["mappings.b.portName", "mappings.d.portName"]);
    for (const e of errors) assert.match(e.message, /already mapping "(a|c)"'s; .*not applied/);
    // A mapping that had a free logical port before keeps its last good value.
    const before = validateDesired(
      { relay, mappings: { c: { target: "10.0.0.3:22" }, d: { target: "10.0.0.4:22" } } },
      defaultConfig(),
    ).config;
    const again = validateDesired(
      {
        relay,
        mappings: {
          c: { target: "10.0.0.3:22", portName: "p" },
          d: { target: "10.0.0.4:22", portName: "p" },
        },
      },
      before,
    );
    assert.equal(again.config.mappings.d?.portName, undefined, "d keeps its old logical port 'd'");
    assert.match(again.errors[0]?.message ?? "", /last good value kept/);
    // The rollout refuses such a change before writing anything (400 naming the path).
    assert.throws(
      () =>
        validateDesiredForWrite(
          buildDesired(relay, {
            a: mappingSpecSchema.parse({ target: "10.0.0.1:22", portName: "b" }),
            b: mappingSpecSchema.parse({ target: "10.0.0.2:22" }),
          }),
        ),
      (err: Error & { status?: number }) => err.status === 400 && /mappings\.b\.portName/.test(err.message),
    );
  });

  test("a changed portName is a mapping update the module applies", () => {
    const a = validateDesired(
      { relay, mappings: { rdp: { target: "10.0.0.5:3389" } } },
      defaultConfig(),
    ).config;
    const b = validateDesired(
      { relay, mappings: { rdp: { target: "10.0.0.5:3389", portName: "rdp.main" } } },
      a,
    ).config;
    const changes = diffConfig(a, b);
    assert.equal(changes.length, 1);
    assert.equal(changes[0]?.kind, "mapping-updated");
    assert.deepEqual((changes[0] as { changed: string[] }).changed, ["portName"]);
  });

  test("the rollout takes portName (API body, update) and writes it to the twin only when set", () => {
    const spec = mappingSpecSchema.parse({ target: "10.0.0.5:3389", portName: "rdp.main" });
    assert.equal(updateMappingBodySchema.parse({ portName: "plant/rdp" }).portName, "plant/rdp");
    assert.equal(
      mappingSpecSchema.safeParse({ target: "10.0.0.5:3389", portName: "rdp main" }).success,
      false,
    );
    const desired = buildDesired(relay, {
      rdp_main: spec,
      ssh: mappingSpecSchema.parse({ target: "10.0.0.5:22" }),
    });
    const mappings = desired.mappings as Record<string, Record<string, unknown>>;
    assert.equal(mappings.rdp_main?.portName, "rdp.main");
    assert.equal(Object.hasOwn(mappings.ssh ?? {}, "portName"), false);
    validateDesiredForWrite(desired);
  });

  test("a route row carries the logical port the gateway sends; a bad one is a reported row problem", () => {
    const row = {
      rowKey: "21001",
      kind: "tcp" as const,
      port: 21001,
      siteId: "plant-1",
      portName: "rdp_main",
      logicalPort: "rdp.main",
      allowCidrs: [],
      maxConnections: 0,
      ratePerMinute: 0,
      proxyProtocol: false,
    };
    const entity = routeToEntity(row) as unknown as Record<string, unknown>;
    assert.equal(entity.logicalPort, "rdp.main");
    const parsed = parseRouteRow(entity);
    assert.ok(!("message" in parsed));
    assert.equal(parsed.logicalPort, "rdp.main");
    const { logicalPort: _l, ...plain } = row;
    const without = parseRouteRow(routeToEntity(plain) as unknown as Record<string, unknown>);
    assert.ok(!("message" in without) && without.logicalPort === undefined);
    const bad = parseRouteRow({ ...entity, logicalPort: "rdp main" });
    assert.ok("message" in bad);
    assert.match(bad.message, /logicalPort/);
  });
});
