/**
 * JSON Schema export of the desired-properties contract, committed as
 * `manifests/relay-listener.twin.schema.json` (`npm run manifests` regenerates it; a unit test
 * checks the committed file equals this output).
 */
import { z } from "zod";
import { DesiredPropertiesSchema } from "./schema.ts";

/** Repo-relative path of the committed export. */
export const TWIN_SCHEMA_PATH = "manifests/relay-listener.twin.schema.json";

/** The JSON Schema (draft 2020-12) of what a writer may put in the module's desired properties. */
export function twinJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(DesiredPropertiesSchema, { io: "input", target: "draft-2020-12" });
  return { ...schema, $id: "https://relay-fleet.local/schemas/relay-listener.twin.schema.json" };
}

/** The file content: stable key order, two-space indent, trailing newline. */
export function twinJsonSchemaText(): string {
  return `${JSON.stringify(twinJsonSchema(), null, 2)}\n`;
}
