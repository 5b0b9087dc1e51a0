/**
 * The public port range is one parameter: the rollout allocates from it (RELAY_PORT_RANGES), the
 * load balancer has one rule per port of it, the NSG opens exactly it, and the gateways reserve it
 * from Linux's ephemeral ports. Checked with the defaults and with another range.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { parsePortRanges, portsOf } from "../../lib/ledger/index.ts";
import { evaluateValue, findResource, loadTemplate, type Resource } from "../helpers/arm-template.ts";

const template = loadTemplate();
const base = {
  gatewayImage: "registry.invalid/relay-fleet-gateway:1",
  adminSshPublicKey: "ssh-ed25519 AAAA test",
};

type Rule = { name: string; properties: Record<string, unknown> };

function resource(type: string): Resource {
  const r = template.resources.find((x) => x.type === type);
  assert.ok(r, `the template has a ${type}`);
  return r;
}

function layout(parameters: Record<string, unknown>) {
  const ctx = { template, parameters: { ...base, ...parameters } };
  const lb = findResource<{
    properties: { copy: Array<{ name: string; count: string; input: Rule }>; probes: Rule[] };
  }>(template, "Microsoft.Network/loadBalancers");
  const loop = lb.properties.copy.find((c) => c.name === "loadBalancingRules");
  assert.ok(loop, "the load balancer's rules are one copy loop");
  const count = Number(evaluateValue(loop.count, ctx));
  const rules = Array.from({ length: count }, (_, i) =>
    evaluateValue(loop.input, { ...ctx, copyIndex: { loadBalancingRules: i } }),
  ) as Rule[];
  const nsg = evaluateValue(resource("Microsoft.Network/networkSecurityGroups").properties, ctx) as {
    securityRules: Rule[];
  };
  const site = findResource<{
    properties: { siteConfig: { appSettings: Array<{ name: string; value: string }> } };
  }>(template, "Microsoft.Web/sites");
  const ranges = site.properties.siteConfig.appSettings.find((s) => s.name === "RELAY_PORT_RANGES");
  assert.ok(ranges, "the rollout gets RELAY_PORT_RANGES");
  const cloudInit = String(evaluateValue("[variables('cloudInit')]", ctx));
  const sysctl = /path: \/etc\/sysctl\.d\/[\w.-]+\n\s+encoding: b64\n\s+content: (\S+)/.exec(cloudInit);
  assert.ok(sysctl, "cloud-init writes a sysctl file");
  return {
    ctx,
    rules,
    probes: evaluateValue(lb.properties.probes, ctx) as Rule[],
    nsg,
    rolloutPorts: [...portsOf(parsePortRanges(String(evaluateValue(ranges.value, ctx))))],
    sysctl: Buffer.from(sysctl[1] as string, "base64").toString("utf8"),
    cloudInit,
  };
}

for (const [label, params, from, to] of [
  ["defaults", {}, 61000, 61019],
  ["40000-40002", { publicPortFrom: 40000, publicPortCount: 3 }, 40000, 40002],
] as const) {
  test(`load balancer, NSG and port reservation cover exactly the rollout's range (${label})`, () => {
    const l = layout(params);
    const expected = Array.from({ length: to - from + 1 }, (_, i) => from + i);
    assert.deepEqual(l.rolloutPorts, expected, "the rollout allocates from the range");

    // One TCP rule per port, same port front and back, probed on /readyz.
    assert.deepEqual(
      l.rules.map((r) => r.properties.frontendPort),
      expected,
    );
    for (const r of l.rules) {
      assert.equal(r.properties.backendPort, r.properties.frontendPort);
      assert.equal(r.properties.protocol, "Tcp");
      assert.match(String((r.properties.probe as { id: string }).id), /\/probes\/readyz$/);
    }
    const probe = l.probes.find((p) => p.name === "readyz");
    assert.equal(probe?.properties.protocol, "Http");
    assert.equal(probe?.properties.requestPath, "/readyz");
    const gateway = evaluateValue("[variables('gatewayEnvironment')]", l.ctx) as Record<string, string>;
    assert.equal(
      String(probe?.properties.port),
      gateway.GATEWAY_HEALTH_PORT,
      "probe on the gateway's health port",
    );

    // The NSG allows inbound exactly that range, from the internet, and nothing else.
    const allows = l.nsg.securityRules.filter(
      (r) => r.properties.access === "Allow" && r.properties.direction === "Inbound",
    );
    assert.equal(allows.length, 1, "one inbound allow rule");
    const rule = allows[0]?.properties ?? {};
    assert.equal(rule.destinationPortRange, `${from}-${to}`);
    assert.equal(rule.protocol, "Tcp");
    assert.equal(rule.destinationPortRanges, undefined);

    // The gateways reserve the range, so no outgoing connection takes a public port.
    assert.equal(l.sysctl.trim(), `net.ipv4.ip_local_reserved_ports = ${from}-${to}`);
    assert.match(l.cloudInit, /\n {2}- sysctl --system\n/);
  });
}

test("the gateway subnet carries the NSG and has no default outbound access (the LB's outbound rule serves)", () => {
  const ctx = { template, parameters: base };
  const vnet = evaluateValue(resource("Microsoft.Network/virtualNetworks").properties, ctx) as {
    subnets: Array<{ properties: { networkSecurityGroup: { id: string }; defaultOutboundAccess: boolean } }>;
  };
  assert.match(vnet.subnets[0]?.properties.networkSecurityGroup.id ?? "", /networkSecurityGroups\//);
  assert.equal(vnet.subnets[0]?.properties.defaultOutboundAccess, false);
  const lb = findResource<{
    sku: { name: string };
    properties: { outboundRules: unknown[] };
  }>(template, "Microsoft.Network/loadBalancers");
  assert.equal(lb.sku.name, "Standard");
  assert.equal(lb.properties.outboundRules.length, 1);
});
