/**
 * Deployment templates and the manifests `npm run manifests` generates, validated against the
 * SchemaStore schemas in ../shared/schemas (template 4.0, manifest 2.0) with ajv; the
 * generation rules of iotedgedev (placeholders, createOptions chunks); ADR 0004 (no
 * relayListener desired properties in the base deployment); the dev container parses.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { Ajv } from "ajv";
import {
  generateAll,
  generateDeployment,
  loadEnv,
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
  ]);
  const validate = schemaValidator().getSchema(MANIFEST_ID)!;
  for (const file of files) {
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
  const env = { FOO: "bar", CONTAINER_TAG: "-rc1" };
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

test("the example layered deployment uses flattened paths and sets no relayListener desired properties", () => {
  const doc = read(join(REPO_ROOT, "manifests/layered-deployment.relay-listener.example.json"));
  const content = (doc.content as Json).modulesContent as Json;
  assert.ok("properties.desired.modules.relayListener" in (content.$edgeAgent as Json));
  assert.equal(content.relayListener, undefined);
  const settings = ((content.$edgeAgent as Json)["properties.desired.modules.relayListener"] as Json)
    .settings as Json;
  assert.equal(typeof settings.createOptions, "string");
  JSON.parse(settings.createOptions as string);
});

test(".devcontainer/devcontainer.json parses and installs what the brief asks", () => {
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
    "20",
  ]) {
    assert.ok(text.includes(needle), `devcontainer lacks ${needle}`);
  }
});
