/**
 * The error-code table (lib/errors.ts) is the one list of RF_ERR_* codes: docs/errors.md lists
 * exactly its codes, errors take their status from it, and the IoT Hub emulator's own error
 * table agrees with it.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { ERROR_CODES, type ErrorCode, isErrorCode, RelayFleetError, statusOf } from "../../lib/errors.ts";
import { HUB_ERRORS, HubError } from "../../sim/iothub-emulator/errors.ts";
import { REPO_ROOT } from "../helpers/index.ts";

const docRows = new Map<string, string>();
for (const line of readFileSync(join(REPO_ROOT, "docs/errors.md"), "utf8").split("\n")) {
  const m = /^\|\s*`(RF_ERR_[A-Z0-9_]+)`\s*\|(.*)$/.exec(line);
  if (m?.[1]) docRows.set(m[1], m[2] ?? "");
}
const codes = Object.keys(ERROR_CODES) as ErrorCode[];

test("docs/errors.md lists exactly the table's codes", () => {
  const documented = [...docRows.keys()].sort();
  assert.deepEqual(
    documented.filter((c) => !isErrorCode(c)),
    [],
    "documented codes missing from ERROR_CODES",
  );
  assert.deepEqual(
    codes.filter((c) => !docRows.has(c)),
    [],
    "codes of ERROR_CODES missing from docs/errors.md",
  );
});

test("each documented status is the table's", () => {
  for (const code of codes) {
    const status = statusOf(code);
    if (status === undefined) continue;
    assert.match(
      docRows.get(code) ?? "",
      new RegExp(`\\b${status}\\b`),
      `${code}: the docs should say ${status}`,
    );
  }
});

test("an error takes its status and close code from the table; a peer's only where the code says", () => {
  assert.equal(new RelayFleetError("RF_ERR_ROLLOUT_SITE_NOT_FOUND", "x").status, 404);
  assert.equal(new RelayFleetError("RF_ERR_RELAY_CONTROL_MALFORMED", "x").closeCode, 1008);
  assert.equal(new RelayFleetError("RF_ERR_PREAMBLE_MODE", "x").status, undefined);
  assert.equal(new RelayFleetError("RF_ERR_RELAY_REJECTED", "x", { status: 418 }).status, 418);
  assert.equal(new RelayFleetError("RF_ERR_TUNNEL_REFUSED", "x", { closeCode: 1013 }).closeCode, 1013);
  // A fixed status cannot be overridden, at compile time or at run time.
  // @ts-expect-error status is the table's for this code
  const forced = new RelayFleetError("RF_ERR_SAS_EXPIRED", "x", { status: 500 });
  assert.equal(forced.status, 401);
  // @ts-expect-error a misspelt code does not compile
  const typo: ErrorCode = "RF_ERR_SAS_EXPIRD";
  assert.equal(isErrorCode(typo), false);
  for (const code of codes) assert.ok(ERROR_CODES[code].meaning.length > 0, code);
});

test("the IoT Hub emulator's errors answer with the status of their RF_ERR code", () => {
  for (const [hubCode, spec] of Object.entries(HUB_ERRORS)) {
    assert.equal(statusOf(spec.rf), spec.status, hubCode);
    assert.equal(new HubError(hubCode as keyof typeof HUB_ERRORS, "x").status, spec.status, hubCode);
  }
});
