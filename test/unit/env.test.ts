/** lib/env.ts: how every part reads its environment. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { z } from "zod";
import { envInt, envOptionalInt, envText, parseEnv } from "../../lib/env.ts";
import { hasErrorCode } from "../../lib/errors.ts";

const schema = z.object({ COUNT: envInt(2, 1, 8), LIMIT: envOptionalInt(0), NAME: envText() });

test("unset or empty takes the default, numbers are checked, text stays text", () => {
  assert.deepEqual(parseEnv(schema, { COUNT: "", NAME: "" }, "RF_ERR_MODULE_SETTING", ""), {
    COUNT: 2,
    NAME: undefined,
  });
  assert.deepEqual(parseEnv(schema, { COUNT: "8", LIMIT: "0", NAME: "x" }, "RF_ERR_MODULE_SETTING", ""), {
    COUNT: 8,
    LIMIT: 0,
    NAME: "x",
  });
});

test("a refusal names every bad variable and shows numbers, never text", () => {
  try {
    parseEnv(
      schema.extend({ SECRET: z.string().regex(/^ok$/, "must be ok") }),
      { COUNT: "9", LIMIT: "-1", SECRET: "AccountKey=abc" },
      "RF_ERR_GATEWAY_CONFIG",
      "gateway configuration: ",
    );
    assert.fail("accepted");
  } catch (err) {
    assert.ok(hasErrorCode(err, "RF_ERR_GATEWAY_CONFIG"));
    const message = (err as Error).message;
    assert.match(
      message,
      /^gateway configuration: COUNT=9 must be an integer 1-8; LIMIT=-1 must be an integer >= 0/,
    );
    assert.match(message, /SECRET must be ok/);
    assert.doesNotMatch(message, /AccountKey/);
  }
});
