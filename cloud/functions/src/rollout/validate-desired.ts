/**
 * Checks desired properties against the module twin contract (`lib/twin`) before they are
 * written: the whole document must parse strictly and fit IoT Hub's 32 KB desired section, so
 * rollout never writes something the module would reject part of.
 */
import { RelayFleetError } from "../../../../lib/errors.ts";
import {
  DesiredPropertiesSchema,
  TWIN_SECTION_LIMIT_BYTES,
  twinSizeBytes,
} from "../../../../lib/twin/index.ts";
import type { JsonObject } from "./hub.ts";

/** Throws `RF_ERR_ROLLOUT_INVALID_TWIN` (400) naming the first bad path. */
export function validateDesiredForWrite(desired: JsonObject): void {
  const parsed = DesiredPropertiesSchema.safeParse(desired);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = issue?.path.map(String).join(".") ?? "";
    throw new RelayFleetError(
      "RF_ERR_ROLLOUT_INVALID_TWIN",
      `The module twin for this site would be invalid at ${path || "(root)"}: ${issue?.message ?? "bad value"}.`,
    );
  }
  const size = twinSizeBytes(desired);
  if (size > TWIN_SECTION_LIMIT_BYTES) {
    throw new RelayFleetError(
      "RF_ERR_ROLLOUT_INVALID_TWIN",
      `The module twin for this site would be ${size} bytes, over IoT Hub's ${TWIN_SECTION_LIMIT_BYTES}-byte desired limit; use fewer mappings.`,
    );
  }
}
