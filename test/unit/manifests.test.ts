/**
 * Deployment templates and the manifests `npm run manifests` generates, validated against the
 * SchemaStore schemas in ../shared/schemas (template 4.0, manifest 2.0) with ajv; the
 * generation rules of iotedgedev 3.3.x (placeholders, `-<CONTAINER_TAG>`, lower-cased repository,
 * python-dotenv parsing, DOTENV_FILE / DEPLOYMENT_CONFIG_FILE, unset variables are errors,
 * createOptions chunks); the templates' security promises (no host ports, no cloud-set
 * allowlist, loopback-only inspector); ADR 0004 (no
 * relayListener desired properties in the base deployment); the dev container parses.
 */
import assert from "node:assert/strict";
import { cpSync, existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { Ajv } from "ajv";
import { RING_PRIORITY, ringCondition } from "../../lib/fleet-deployment.ts";
import {
  GenConfigError,
  generateAll,
  generateDeployment,
  imageFor,
  loadEnv,
  parseDotEnv,
  readModules,
  splitCreateOptions,
  TWIN_VALUE_MAX_SIZE,
} from "../../scripts/genconfig.ts";
import { REPO_ROOT, tempDir } from "../helpers/index.ts";

const SCHEMAS = join(REPO_ROOT, "../shared/schemas");
const haveSchemas = existsSync(SCHEMAS);
const skip = haveSchemas ? false : "../shared/schemas is absent: SchemaStore validation skipped";

type Json = Record<string, unknown>;
const read = (p: string) => JSON.parse(readFileSync(p, "utf8")) as Json;

/** The draft-04 SchemaStore files, loaded into ajv (draft-07 reads them: they use no draft-04-only keywords). */
function schemaValidator(): Ajv {
  const ajv = new Ajv({ strict: false, allErrors: true, validateSchema: false });
  for (const file of readdirSync(SCHEMAS).filter((f) => f.endsWith(".json"))) {
    const schema = read(join(SCHEMAS, file));
    const id = schema.id as string;
    delete schema.id;
    delete schema.$schema;
    ajv.addSchema({ ...schema, $id: id }, id);
  }
  return ajv;
}

const TEMPLATE_ID = "https://json.schemastore.org/azure-iot-edge-deployment-template-4.0.json";
const MANIFEST_ID = "https://json.schemastore.org/azure-iot-edge-deployment-2.0.json";

for (const template of ["deployment.template.json", "deployment.debug.template.json"]) {
  test(`${template} is valid against the SchemaStore template 4.0 schema`, { skip }, () => {
    const validate = schemaValidator().getSchema(TEMPLATE_ID)!;
    const doc = read(join(REPO_ROOT, template));
    assert.equal(validate(doc), true, JSON.stringify(validate.errors, null, 1));
  });

  test(`${template} deploys relayListener with a placeholder image and no desired properties (ADR 0004)`, () => {
    const doc = read(join(REPO_ROOT, template));
    const content = doc.modulesContent as Json;
    assert.equal(
      content.relayListener,
      undefined,
      "the base deployment must not carry relayListener properties.desired",
    );
    const text = readFileSync(join(REPO_ROOT, template), "utf8");
    assert.match(text, /"image": "\$\{MODULES\.relayListener(\.debug)?\}"/);
  });
}

test("npm run manifests writes a valid 2.0 manifest per platform, like iotedgedev genconfig", {
  skip,
}, (t) => {
  const out = tempDir(t);
  const files = generateAll(REPO_ROOT, out);
  const names = files.map((f) => f.slice(out.length + 1)).sort();
  assert.deepEqual(names, [
    "deployment.amd64.json",
    "deployment.arm32v7.json",
    "deployment.arm64v8.json",
    "deployment.debug.amd64.json",
    "layered-deployment.relay-listener.amd64.json",
    "layered-deployment.relay-listener.arm32v7.json",
    "layered-deployment.relay-listener.arm64v8.json",
  ]);
  const validate = schemaValidator().getSchema(MANIFEST_ID)!;
  for (const file of files.filter((f) => !f.includes("layered-"))) {
    const text = readFileSync(file, "utf8");
    const doc = JSON.parse(text) as Json;
    assert.equal(validate(doc), true, `${file}: ${JSON.stringify(validate.errors, null, 1)}`);
    assert.ok(!text.includes("${"), `${file} still has a placeholder`);
    assert.equal(doc["$schema-template"], undefined);
    const mod = (((doc.modulesContent as Json).$edgeAgent as Json)["properties.desired"] as Json)
      .modules as Json;
    const settings = (mod.relayListener as Json).settings as Json;
    const platform = file.match(/\.([a-z0-9]+)\.json$/)![1]!;
    assert.equal(
      settings.image,
      `localhost:5000/relaylistener:0.1.0-${platform}${file.includes(".debug.") ? ".debug" : ""}`,
    );
    assert.equal(typeof settings.createOptions, "string");
  }
});

test("createOptions is stringified and split into 512-character chunks", () => {
  const settings: Json = {
    createOptions: { Env: Array.from({ length: 60 }, (_, i) => `VARIABLE_${i}=${"x".repeat(10)}`) },
  };
  const text = JSON.stringify(settings.createOptions);
  splitCreateOptions(settings);
  const keys = Object.keys(settings);
  assert.deepEqual(keys.slice(0, 3), ["createOptions", "createOptions01", "createOptions02"]);
  assert.ok(keys.every((k) => (settings[k] as string).length <= TWIN_VALUE_MAX_SIZE));
  assert.equal(keys.map((k) => settings[k]).join(""), text);
  assert.throws(() => splitCreateOptions({ createOptions: "x".repeat(5000) }), /at most 4096/);
});

test("placeholders: ${MODULES.x}, ${MODULES.x.debug}, ${VAR} from the environment", () => {
  const modules = readModules(REPO_ROOT, "modules", { CONTAINER_REGISTRY_SERVER: "reg.example" });
  const template = (image: string) =>
    JSON.stringify({
      "$schema-template": "4.0.0",
      modulesContent: {
        $edgeAgent: {
          "properties.desired": { modules: { m: { settings: { image, createOptions: { X: "${FOO}" } } } } },
        },
      },
    });
  const imageOf = (out: Json) =>
    (
      (((out.modulesContent as Json).$edgeAgent as Json)["properties.desired"] as Json).modules as Record<
        string,
        { settings: Json }
      >
    ).m?.settings;
  const env = { FOO: "bar", CONTAINER_TAG: "rc1" };
  const plain = imageOf(
    generateDeployment(template("${MODULES.relayListener}"), { platform: "arm64v8", env, modules }),
  );
  assert.equal(plain?.image, "reg.example/relaylistener:0.1.0-rc1-arm64v8");
  assert.equal(plain?.createOptions, '{"X":"bar"}');
  const debug = imageOf(
    generateDeployment(template("${MODULES.relayListener.debug}"), { platform: "amd64", env, modules }),
  );
  assert.equal(debug?.image, "reg.example/relaylistener:0.1.0-rc1-amd64.debug");
  assert.throws(
    () =>
      generateDeployment(template("${MODULES.relayListener.debug}"), { platform: "arm64v8", env, modules }),
    /no platform 'arm64v8.debug'/,
  );
  assert.throws(
    () => generateDeployment(template("${MODULES.nope}"), { platform: "amd64", env, modules }),
    /names no module/,
  );
});

test(".env.example sets no variable that nothing uses (EDGEAGENT_/EDGEHUB_SCHEMA_VERSION)", () => {
  const example = parseDotEnv(readFileSync(join(REPO_ROOT, ".env.example"), "utf8"));
  const templates = [
    "deployment.template.json",
    "deployment.debug.template.json",
    "modules/relayListener/module.json",
  ]
    .map((f) => readFileSync(join(REPO_ROOT, f), "utf8"))
    .join("\n");
  for (const name of ["EDGEAGENT_SCHEMA_VERSION", "EDGEHUB_SCHEMA_VERSION", "RELAY_ALLOWED_TARGETS"]) {
    assert.ok(!(name in example) || templates.includes(`\${${name}}`), `${name} is set but unused`);
  }
});

test(".env.example carries the iotedgedev variables", () => {
  const env = loadEnv(join(REPO_ROOT, "no-such-dir"));
  const example = readFileSync(join(REPO_ROOT, ".env.example"), "utf8");
  for (const v of [
    "CONTAINER_REGISTRY_SERVER",
    "EDGE_RUNTIME_VERSION",
    "CONFIG_OUTPUT_DIR",
    "DEFAULT_PLATFORM",
    "MODULES_PATH",
    "IOTHUB_CONNECTION_STRING",
  ]) {
    assert.match(example, new RegExp(`^${v}=`, "m"));
  }
  assert.equal(typeof env, "object");
});

test("the layered ring example carries the template's whole module definition, from lib/fleet-deployment.ts", (t) => {
  const doc = read(join(REPO_ROOT, "manifests/layered-deployment.relay-listener.example.json"));
  assert.equal(doc.targetCondition, ringCondition("canary"));
  assert.equal(doc.priority, RING_PRIORITY);
  const content = (doc.content as Json).modulesContent as Json;
  assert.equal(content.relayListener, undefined, "no relayListener properties.desired (ADR 0004)");
  const layer = (content.$edgeAgent as Json)["properties.desired.modules.relayListener"] as Json;
  const template = read(join(REPO_ROOT, "deployment.template.json"));
  const base = (
    (((template.modulesContent as Json).$edgeAgent as Json)["properties.desired"] as Json).modules as Json
  ).relayListener as Json;
  // A layer replaces the module's definition: memory cap, log rotation, allowlist mount, startupOrder.
  assert.deepEqual(layer, base);
  const out = tempDir(t);
  const files = generateAll(REPO_ROOT, out, {});
  const generated = read(files.find((f) => f.endsWith("layered-deployment.relay-listener.arm32v7.json"))!);
  const mod = (((generated.content as Json).modulesContent as Json).$edgeAgent as Json)[
    "properties.desired.modules.relayListener"
  ] as Json;
  const settings = mod.settings as Json;
  assert.equal(
    settings.image,
    "localhost:5000/relaylistener:0.1.0-arm32v7",
    "the platform is not hard-coded",
  );
  const create = JSON.parse(settings.createOptions as string) as { HostConfig: Json };
  assert.equal(create.HostConfig.Memory, 268435456);
  assert.deepEqual(create.HostConfig.Binds, ["/etc/relay-listener:/etc/relay-listener:ro"]);
  assert.equal(mod.startupOrder, 1);
  assert.equal(generated._comment, undefined);
});

test("CONTAINER_TAG is joined as -<tag>, as iotedgedev does; the repository is lower-cased", () => {
  const modules = readModules(REPO_ROOT, "modules", { CONTAINER_REGISTRY_SERVER: "MyRegistry.Example" });
  const mod = modules.find((m) => m.name === "relayListener")!;
  assert.equal(mod.repository, "myregistry.example/relaylistener");
  assert.equal(imageFor(mod, "amd64", "ci42"), "myregistry.example/relaylistener:0.1.0-ci42-amd64");
  assert.equal(imageFor(mod, "amd64", ""), "myregistry.example/relaylistener:0.1.0-amd64");
  assert.equal(
    imageFor(mod, "amd64.debug", "ci42"),
    "myregistry.example/relaylistener:0.1.0-ci42-amd64.debug",
  );
});

test(".env is read as python-dotenv reads it", () => {
  const env = parseDotEnv(
    [
      "# a comment",
      "export A=plain # inline comment",
      "B='single # not a comment ${A}'",
      'C="double \\"quoted\\" ${A}"',
      "D=${A}-${NOPE:-fallback}",
      "E=",
      'F="two',
      'lines"',
      "G=a#b",
      "  H = spaced  ",
    ].join("\n"),
    { OUTER: "x" },
  );
  assert.deepEqual(env, {
    A: "plain",
    B: "single # not a comment ${A}",
    C: 'double "quoted" plain',
    D: "plain-fallback",
    E: "",
    F: "two\nlines",
    G: "a#b",
    H: "spaced",
  });
  assert.throws(() => parseDotEnv('X="unterminated'), /line 1: X has an unterminated " quote/);
  assert.throws(() => parseDotEnv("not a line"), /line 1: cannot parse/);
});

test("an unset ${VAR} is an error that names it", () => {
  const template = JSON.stringify({
    modulesContent: { $edgeAgent: { "properties.desired": { x: "${NOT_SET_ANYWHERE}" } } },
  });
  assert.throws(
    () => generateDeployment(template, { platform: "amd64", env: {}, modules: [], templateName: "t.json" }),
    (err: unknown) =>
      err instanceof GenConfigError && /\$\{NOT_SET_ANYWHERE\} in t\.json is not set/.test(err.message),
  );
});

test("DOTENV_FILE and DEPLOYMENT_CONFIG_FILE are honoured", (t) => {
  const root = tempDir(t);
  cpSync(join(REPO_ROOT, "modules"), join(root, "modules"), { recursive: true });
  cpSync(join(REPO_ROOT, "deployment.template.json"), join(root, "deployment.template.json"));
  const example = readFileSync(join(REPO_ROOT, ".env.example"), "utf8");
  writeFileSync(
    join(root, "ci.env"),
    `${example}\nCONTAINER_REGISTRY_SERVER=Ci.Registry\nCONTAINER_TAG=ci7\n`,
  );
  const out = join(root, "out");
  const files = generateAll(root, out, { DOTENV_FILE: "ci.env", DEPLOYMENT_CONFIG_FILE: "edge.json" });
  assert.deepEqual(files.map((f) => f.slice(out.length + 1)).sort(), [
    "deployment.arm32v7.json",
    "deployment.arm64v8.json",
    "edge.json",
  ]);
  assert.ok(!existsSync(join(root, "manifests")), "this root has no layered example");
  const doc = read(join(out, "edge.json"));
  const image = (
    ((((doc.modulesContent as Json).$edgeAgent as Json)["properties.desired"] as Json).modules as Json)
      .relayListener as Json
  ).settings as Json;
  assert.equal(image.image, "ci.registry/relaylistener:0.1.0-ci7-amd64");
  assert.throws(
    () => generateAll(root, out, { DOTENV_FILE: "missing.env" }),
    /DOTENV_FILE missing\.env does not exist/,
  );
});

for (const template of ["deployment.template.json", "deployment.debug.template.json"]) {
  test(`${template} keeps the README's security promises`, () => {
    const doc = read(join(REPO_ROOT, template));
    const agent = ((doc.modulesContent as Json).$edgeAgent as Json)["properties.desired"] as Json;
    const hub = ((doc.modulesContent as Json).$edgeHub as Json)["properties.desired"] as Json;
    assert.equal(agent.schemaVersion, "1.1");
    assert.equal(hub.schemaVersion, "1.2");
    const all = { ...(agent.systemModules as Json), ...(agent.modules as Json) } as Record<string, Json>;
    for (const [name, mod] of Object.entries(all)) {
      const create = ((mod.settings as Json).createOptions ?? {}) as Json;
      const bindings = ((create.HostConfig ?? {}) as Json).PortBindings as
        | Record<string, Array<{ HostIp?: string }>>
        | undefined;
      for (const [port, list] of Object.entries(bindings ?? {})) {
        // Only the debug inspector, and only on the device's loopback.
        assert.equal(`${name} ${port}`, "relayListener 9229/tcp", `${template}: ${name} publishes ${port}`);
        for (const b of list) assert.equal(b.HostIp, "127.0.0.1", `${template}: inspector not on loopback`);
      }
    }
    const env = ((agent.modules as Json).relayListener as Json).env as Json;
    assert.equal(env.RELAY_ALLOWED_TARGETS, undefined, "the cloud must not set the allowlist");
    assert.equal(env.RELAY_ALLOWLIST_FILE, undefined, "the allowlist path is the device mount");
    const binds = ((((agent.modules as Json).relayListener as Json).settings as Json).createOptions as Json)
      .HostConfig as Json;
    assert.deepEqual(binds.Binds, ["/etc/relay-listener:/etc/relay-listener:ro"]);
  });
}

test("the README warns about the debug inspector", () => {
  const readme = readFileSync(join(REPO_ROOT, "README.md"), "utf8");
  assert.match(readme, /Debug inspector on loopback only[\s\S]{0,200}`127\.0\.0\.1:9229`/);
});

test(".devcontainer/devcontainer.json parses and installs the Azure CLI with its IoT extension, iotedgedev, Docker-in-Docker and the VS Code extensions", () => {
  const doc = read(join(REPO_ROOT, ".devcontainer/devcontainer.json"));
  const text = JSON.stringify(doc);
  for (const needle of [
    "azure-cli",
    "azure-iot",
    "docker-in-docker",
    "iotedgedev",
    "vsciot-vscode.azure-iot-edge",
    "ms-azuretools.vscode-azurefunctions",
    "npm ci",
  ]) {
    assert.ok(text.includes(needle), `devcontainer lacks ${needle}`);
  }
  // A Node.js LTS (22 or 24); iotedgedev 3.3.8 declares python_requires '>=3.6, <3.10'.
  assert.match(doc.image as string, /typescript-node:1-(22|24)-/);
  const python = (doc.features as Record<string, { version?: string }>)[
    "ghcr.io/devcontainers/features/python:1"
  ];
  assert.match(python?.version ?? "", /^3\.[6-9]$/);
  assert.match(doc.postCreateCommand as string, /iotedgedev==3\.3\.8/);
});
